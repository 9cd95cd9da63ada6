//! `isobox run --lang`: every built-in preset whose toolchain this host has
//! compiles and runs a hello world and an A+B program; a preset whose
//! toolchain is missing is skipped with a loud message. Hostile programs
//! of the suite (C and Python) get the same verdicts through the presets
//! as through the library.

mod common;
#[path = "common/hostile_cases.rs"]
mod hostile_cases;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{hostile, skip_unless_privileged, temp_dir};
use hostile_cases::{
    cases, go_judge_of, is_python, through_the_library, Case, Measured, CLOCK, CPU, INPUT,
    PYTHON_CPU,
};
use isobox::ExecutionStatus;

/// `(preset, source file name, hello world, A+B)`.
const PROGRAMS: [(&str, &str, &str, &str); 7] = [
    (
        "c",
        "hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n",
        "#include <stdio.h>\nint main(void) { long long a, b; \
         if (scanf(\"%lld %lld\", &a, &b) != 2) return 1; printf(\"%lld\\n\", a + b); return 0; }\n",
    ),
    (
        "cpp",
        "hello.cpp",
        "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }\n",
        "#include <iostream>\nint main() { long long a, b; std::cin >> a >> b; \
         std::cout << a + b << '\\n'; }\n",
    ),
    (
        "python",
        "hello.py",
        "print('hello')\n",
        "a, b = map(int, input().split())\nprint(a + b)\n",
    ),
    (
        "java",
        "Main.java",
        "public class Main { public static void main(String[] args) { \
         System.out.println(\"hello\"); } }\n",
        "import java.util.Scanner;\npublic class Main { public static void main(String[] args) { \
         Scanner in = new Scanner(System.in); long a = in.nextLong(), b = in.nextLong(); \
         System.out.println(a + b); } }\n",
    ),
    (
        "rust",
        "hello.rs",
        "fn main() { println!(\"hello\"); }\n",
        "use std::io::Read;\nfn main() { let mut s = String::new(); \
         std::io::stdin().read_to_string(&mut s).unwrap(); \
         let n: Vec<i64> = s.split_whitespace().map(|w| w.parse().unwrap()).collect(); \
         println!(\"{}\", n[0] + n[1]); }\n",
    ),
    (
        "go",
        "hello.go",
        "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }\n",
        "package main\nimport \"fmt\"\nfunc main() { var a, b int64; fmt.Scan(&a, &b); \
         fmt.Println(a + b) }\n",
    ),
    (
        "javascript",
        "hello.js",
        "console.log('hello');\n",
        "const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/).map(BigInt);\n\
         console.log((a + b).toString());\n",
    ),
];

/// The host paths the built-in preset `lang` requires that are missing
/// here, read from the same data file isobox embeds.
fn missing_toolchain(lang: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/languages.toml");
    let presets: toml::Table = fs::read_to_string(path).unwrap().parse().unwrap();
    let preset = presets[lang].as_table().expect("a preset table");
    preset["requires"]
        .as_array()
        .expect("requires is a list")
        .iter()
        .map(|path| path.as_str().unwrap().to_string())
        .filter(|path| !Path::new(path).exists())
        .collect()
}

/// Runs isobox in `cwd`, stdin from /dev/null; the exit status, stdout and
/// stderr. No box directory may be left in its TMPDIR.
fn isobox_in(cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let tmp = temp_dir("isobox-lang-tmp-", 0o755);
    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp.path())
        .env_remove("ISOBOX_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("isobox runs");
    let left = fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(left, 0, "a box directory is left behind: {output:?}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_available_preset_runs_hello_world_and_a_plus_b() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-lang-", 0o755);
    fs::write(dir.path().join("in.txt"), "1000000000000 234\n").unwrap();
    let mut ran = 0;
    for (lang, name, hello, sum) in PROGRAMS {
        let missing = missing_toolchain(lang);
        if !missing.is_empty() {
            // Straight to stderr: the harness captures eprintln!, and a
            // skipped language must be seen.
            let message =
                format!("\n*** SKIPPED preset {lang}: this host has no {missing:?} ***\n");
            let _ = std::io::stderr().write_all(message.as_bytes());
            let (code, _, stderr) = isobox_in(dir.path(), &["run", "--lang", lang, "x"]);
            assert_eq!(code, Some(2), "{lang}: {stderr}");
            assert!(stderr.contains(&missing[0]), "{lang}: {stderr}");
            continue;
        }
        // Each program in a directory of its own: Java's file name is fixed.
        for (program, stdin, expected) in [
            (hello, "/dev/null", "hello\n"),
            (sum, "in.txt", "1000000000234\n"),
        ] {
            let sub = temp_dir("isobox-lang-src-", 0o755);
            fs::write(sub.path().join(name), program).unwrap();
            let stdin = if stdin == "in.txt" {
                dir.path().join("in.txt").display().to_string()
            } else {
                stdin.to_string()
            };
            let (code, stdout, stderr) = isobox_in(
                sub.path(),
                &[
                    "run", "--lang", lang, "--time", "5", "--mem", "1G", "--stdin", &stdin, name,
                ],
            );
            assert_eq!(code, Some(0), "{lang}: {stdout} {stderr}");
            assert_eq!(stdout, expected, "{lang}: {stderr}");
            assert!(stderr.contains("Success "), "{lang}: {stderr}");
        }
        ran += 1;
    }
    // C, C++ and Python are the README's prerequisites.
    assert!(ran >= 3, "only {ran} presets could run");
}

#[test]
fn a_compile_error_is_exit_status_1_with_the_compilers_message() {
    skip_unless_privileged!();
    let dir = temp_dir("isobox-lang-", 0o755);
    fs::write(dir.path().join("bad.c"), "int main(void) { return x; }\n").unwrap();
    let (code, stdout, stderr) = isobox_in(dir.path(), &["run", "--lang", "c", "bad.c"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("'x' undeclared"), "{stderr}");
    assert!(
        stderr.contains("isobox: compiling bad.c as C failed"),
        "{stderr}"
    );
    let (code, _, stderr) = isobox_in(dir.path(), &["run", "--lang", "cobol", "bad.c"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no language preset \"cobol\""), "{stderr}");
}

/// A hostile C program as one source file: `hostile.h` put in place of
/// its `#include`, since a compile box holds the source alone.
fn hostile_c_source(name: &str, dir: &Path) -> String {
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/hostile");
    let header = fs::read_to_string(programs.join("hostile.h")).unwrap();
    let source = fs::read_to_string(programs.join(format!("{name}.c"))).unwrap();
    let source = source.replace("#include \"hostile.h\"", &header);
    let file = format!("{name}.c");
    fs::write(dir.join(&file), source).unwrap();
    file
}

/// The verdict `isobox run --lang c|python --json` gives a C or Python case
/// of the hostile suite's table, in go-judge's words, under the limits of
/// the library box it is compared with; and what isobox printed.
fn through_the_preset(case: &Case, dir: &Path) -> (&'static str, String) {
    let python = is_python(case.program);
    let (lang, source) = if python {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/programs/hostile")
            .join(case.program);
        fs::copy(from, dir.join(case.program)).unwrap();
        ("python", case.program.to_string())
    } else {
        ("c", hostile_c_source(case.program, dir))
    };
    let (cpu, clock) = if python {
        (PYTHON_CPU, 60_000_000_000)
    } else {
        (CPU, CLOCK)
    };
    let time = format!("{}", cpu as f64 / 1e9);
    let wall = format!("{}", clock as f64 / 1e9);
    let mut args = vec![
        "run",
        "--json",
        "--lang",
        lang,
        "--time",
        &time,
        "--wall-time",
        &wall,
        "--mem",
        "128M",
        "--processes",
        "16",
        "--fsize",
        "16M",
        "--open-files",
        "256",
        "--output-limit",
        "64K",
    ];
    if case.input {
        fs::write(dir.join("input.txt"), INPUT).unwrap();
        args.extend(["--copy-in", "input.txt"]);
    }
    args.push(&source);
    if !case.args.is_empty() {
        args.push("--");
        args.extend(case.args.iter().map(String::as_str));
    }
    let (code, stdout, stderr) = isobox_in(dir, &args);
    let details = format!("exit {code:?}: {stdout} {stderr}");
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&stdout) else {
        return ("(no JSON)", details);
    };
    let status: ExecutionStatus = serde_json::from_value(json["status"].clone()).unwrap();
    let expected_code = if status == ExecutionStatus::Success {
        0
    } else {
        1
    };
    if code != Some(expected_code) {
        return ("(wrong exit status)", details);
    }
    let measured = Measured {
        status,
        signal: json["signal"].as_i64().map(|signal| signal as i32),
        // The JSON has no errno: the preset's program (./solution,
        // python3) exists, so a failed exec is not an outcome here.
        exec_failed: false,
        cpu_time: json["cpu_time"].as_f64().unwrap(),
        memory_peak: json["memory_peak"].as_u64().unwrap(),
    };
    (go_judge_of(&measured, cpu), details)
}

#[test]
fn hostile_programs_get_the_same_verdicts_through_the_presets() {
    skip_unless_privileged!();
    let host_dir = temp_dir("isobox-lang-host-", 0o755);
    // Shell scripts have no preset; every C and Python case runs.
    let (scripts, cases): (Vec<Case>, Vec<Case>) = cases(&host_dir.path().display().to_string())
        .into_iter()
        .partition(|case| case.program.ends_with(".sh"));
    let scripts: Vec<&str> = scripts.iter().map(|case| case.program).collect();
    let message =
        format!("\n*** NOT through a preset (shell scripts, no shell preset): {scripts:?} ***\n");
    let _ = std::io::stderr().write_all(message.as_bytes());
    assert!(cases.len() >= 30, "only {} C and Python cases", cases.len());
    // Compiled once, before the side-by-side runs.
    let paths: Vec<String> = cases.iter().map(|case| hostile(case.program)).collect();
    let mut failures = Vec::new();
    for (case, path) in cases.iter().zip(&paths) {
        let name = format!("{} {}", case.program, case.args.join(" "));
        let dir = temp_dir("isobox-lang-hostile-", 0o755);
        // Side by side, as the service test: the verdicts are of CPU time
        // and memory, which the other run does not change.
        let ((library, library_details), (preset, preset_details)) = std::thread::scope(|scope| {
            let library = scope.spawn(|| through_the_library(case, path));
            let preset = through_the_preset(case, dir.path());
            (library.join().expect("the library run"), preset)
        });
        eprintln!("{name}: library {library}, preset {preset}");
        if !case.expected.contains(&library) {
            failures.push(format!(
                "{name}: the library gave {library}, expected one of {:?}: {library_details}",
                case.expected
            ));
        }
        if !case.expected.contains(&preset) {
            failures.push(format!(
                "{name}: the preset gave {preset}, expected one of {:?}: {preset_details}",
                case.expected
            ));
        }
        if case.expected.len() == 1 && preset != library {
            failures.push(format!(
                "{name}: the preset gave {preset}, the library {library}: {preset_details}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
