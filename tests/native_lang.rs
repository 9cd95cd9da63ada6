//! `isobox run --lang`: every built-in preset whose toolchain this host has
//! compiles and runs a hello world and an A+B program; a preset whose
//! toolchain is missing is skipped with a loud message. Hostile programs
//! of the suite (C and Python) get the same verdicts through the presets
//! as through the library.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{hostile, skip_unless_privileged, temp_dir, TestBox};

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

/// One hostile program, run through a preset and through the library.
struct Case {
    name: &'static str,
    /// `c` (a hostile `.c` program) or `python` (a `.py` script).
    lang: &'static str,
    args: &'static [&'static str],
    time: u64,
    mem_mib: u64,
    expected: &'static str,
}

#[test]
fn hostile_programs_get_the_same_verdicts_through_the_presets() {
    skip_unless_privileged!();
    let cases = [
        Case {
            name: "forkbomb",
            lang: "c",
            args: &[],
            time: 1,
            mem_mib: 128,
            expected: "TimeLimit",
        },
        Case {
            name: "threadbomb",
            lang: "c",
            args: &[],
            time: 2,
            mem_mib: 128,
            expected: "ProcessLimit",
        },
        Case {
            name: "memory",
            lang: "c",
            args: &["heap"],
            time: 2,
            mem_mib: 64,
            expected: "MemoryLimit",
        },
        Case {
            name: "cpu",
            lang: "c",
            args: &["spin"],
            time: 1,
            mem_mib: 128,
            expected: "TimeLimit",
        },
        Case {
            name: "pymemory.py",
            lang: "python",
            args: &[],
            time: 30,
            mem_mib: 64,
            expected: "MemoryLimit",
        },
    ];
    for case in &cases {
        let dir = temp_dir("isobox-lang-hostile-", 0o755);
        let source = if case.lang == "c" {
            hostile_c_source(case.name, dir.path())
        } else {
            let from = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/programs/hostile")
                .join(case.name);
            fs::copy(from, dir.path().join(case.name)).unwrap();
            case.name.to_string()
        };
        // The limits of the suite's hostile box.
        let time = case.time.to_string();
        let mem = format!("{}M", case.mem_mib);
        let mut args = vec![
            "run",
            "--json",
            "--lang",
            case.lang,
            "--time",
            &time,
            "--wall-time",
            "60",
            "--mem",
            &mem,
            "--processes",
            "16",
            "--fsize",
            "16M",
            "--open-files",
            "256",
            "--output-limit",
            "64K",
            &source,
        ];
        if !case.args.is_empty() {
            args.push("--");
            args.extend(case.args);
        }
        let (code, stdout, stderr) = isobox_in(dir.path(), &args);
        assert_eq!(code, Some(1), "{}: {stdout} {stderr}", case.name);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            json["status"], case.expected,
            "{}: {stdout} {stderr}",
            case.name
        );

        let mut test_box = TestBox::hostile();
        test_box.config.time_limit = Some(Duration::from_secs(case.time));
        test_box.config.wall_time_limit = Some(Duration::from_secs(60));
        test_box.config.memory_limit = Some(case.mem_mib << 20);
        let result = if case.lang == "c" {
            let program = test_box.install(&hostile(case.name));
            let words: Vec<&str> = [program.as_str()]
                .into_iter()
                .chain(case.args.iter().copied())
                .collect();
            test_box.run_hostile(&words)
        } else {
            let script = test_box.install(&hostile(case.name));
            test_box.run_hostile(&["/usr/bin/python3", &script])
        };
        assert_eq!(
            result.status.as_str(),
            case.expected,
            "{}: library {result:?}",
            case.name
        );
        test_box.remove();
    }
}
