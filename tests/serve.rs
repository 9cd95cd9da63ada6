//! `isobox serve` for real: the binary started on a loopback port, driven
//! with a real HTTP client, real programs in real boxes.
#![cfg(feature = "serve")]

mod common;
#[path = "common/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{hostile, program, skip_unless_privileged};
use serde_json::{json, Value};
use server::{dir_of, file_error_types, sh, with, Server};

#[test]
fn every_status() {
    skip_unless_privileged!();
    let memory_bomb = program("memory_bomb");
    let int80 = hostile("int80");
    let server = Server::start(&[
        "--src-prefix",
        &dir_of(&memory_bomb),
        "--src-prefix",
        &dir_of(&int80),
    ]);

    let ok = server.run(sh("echo out; echo err >&2"));
    assert_eq!(ok["status"], "Accepted", "{ok}");
    assert_eq!(ok["exitStatus"], 0);
    assert_eq!(ok["files"]["stdout"], "out\n");
    assert_eq!(ok["files"]["stderr"], "err\n");
    assert!(ok["time"].as_u64().is_some() && ok["runTime"].as_u64().unwrap() > 0);
    assert!(ok["memory"].as_u64().unwrap() > 0, "{ok}");

    let nonzero = server.run(sh("exit 3"));
    assert_eq!(nonzero["status"], "Nonzero Exit Status", "{nonzero}");
    assert_eq!(nonzero["exitStatus"], 3);

    let signalled = server.run(sh("kill -SEGV $$"));
    assert_eq!(signalled["status"], "Signalled", "{signalled}");
    assert_eq!(signalled["exitStatus"], libc::SIGSEGV);

    let spin = server.run(with(
        sh("while :; do :; done"),
        json!({"cpuLimit": 300_000_000u64, "clockLimit": 3_000_000_000u64}),
    ));
    assert_eq!(spin["status"], "Time Limit Exceeded", "{spin}");
    assert!(spin["time"].as_u64().unwrap() >= 300_000_000, "{spin}");

    let sleeper = server.run(with(
        sh("sleep 5"),
        json!({"cpuLimit": 300_000_000u64, "clockLimit": 500_000_000u64}),
    ));
    assert_eq!(sleeper["status"], "Time Limit Exceeded", "{sleeper}");
    assert!(
        sleeper["runTime"].as_u64().unwrap() < 3_000_000_000,
        "{sleeper}"
    );

    let bomb = server.run(json!({
        "args": ["bomb"],
        "files": [null, {"name": "stdout", "max": 100}, {"name": "stderr", "max": 100}],
        "copyIn": {"bomb": {"src": memory_bomb}},
        "cpuLimit": 5_000_000_000u64,
        "memoryLimit": 64u64 << 20,
    }));
    assert_eq!(bomb["status"], "Memory Limit Exceeded", "{bomb}");
    assert!(bomb["memory"].as_u64().unwrap() >= 60 << 20, "{bomb}");

    let flood = server.run(with(
        sh("head -c 100000 /dev/zero | tr '\\0' x"),
        json!({"files": [null, {"name": "stdout", "max": 10}, {"name": "stderr", "max": 100}]}),
    ));
    assert_eq!(flood["status"], "Output Limit Exceeded", "{flood}");
    assert_eq!(flood["files"]["stdout"], "xxxxxxxxxx");
    assert_eq!(file_error_types(&flood), ["CollectSizeExceeded"]);

    let missing = server.run(with(sh("true"), json!({"copyOut": ["nothing"]})));
    assert_eq!(missing["status"], "File Error", "{missing}");
    assert_eq!(file_error_types(&missing), ["CopyOutOpen"]);

    let foreign = server.run(json!({
        "args": ["int80"],
        "files": [null, {"name": "stdout", "max": 1000}, {"name": "stderr", "max": 1000}],
        "copyIn": {"int80": {"src": int80}},
        "cpuLimit": 2_000_000_000u64,
    }));
    assert_eq!(foreign["status"], "Dangerous Syscall", "{foreign}");

    let absent = server.run(json!({"args": ["/no/such/program"], "cpuLimit": 1_000_000_000u64}));
    assert_eq!(absent["status"], "Internal Error", "{absent}");
    assert!(!absent["error"].as_str().unwrap().is_empty(), "{absent}");
}

#[test]
fn copy_in_and_out() {
    skip_unless_privileged!();
    let sources = tempfile::tempdir().unwrap();
    std::fs::write(sources.path().join("data.txt"), "from the host\n").unwrap();
    let prefix = sources.path().display().to_string();
    let server = Server::start(&["--src-prefix", &prefix]);

    let result = server.run(with(
        sh("cat a.txt sub/dir/b.txt data; test -x a.txt && echo exec; \
            printf 1234567890 > big; echo made > /w/made; mkdir -p deep/er; echo d > deep/er/f"),
        json!({
            "copyIn": {
                "a.txt": {"content": "alpha\n"},
                "sub/dir/b.txt": {"content": "beta\n"},
                "/w/data": {"src": format!("{prefix}/data.txt")},
            },
            "copyOut": ["made", "/w/deep/er/f", "absent?", "stdout"],
        }),
    ));
    assert_eq!(result["status"], "Accepted", "{result}");
    assert_eq!(
        result["files"]["stdout"],
        "alpha\nbeta\nfrom the host\nexec\n"
    );
    assert_eq!(result["files"]["made"], "made\n");
    assert_eq!(result["files"]["/w/deep/er/f"], "d\n");
    assert!(result["files"].get("absent").is_none());

    // copyOutMax: refused, or cut with copyOutTruncate.
    let cmd = with(
        sh("printf 1234567890 > big"),
        json!({"copyOut": ["big"], "copyOutMax": 4}),
    );
    let refused = server.run(cmd.clone());
    assert_eq!(refused["status"], "File Error", "{refused}");
    assert_eq!(file_error_types(&refused), ["CopyOutSizeExceeded"]);
    let cut = server.run(with(cmd, json!({"copyOutTruncate": true})));
    assert_eq!(cut["files"]["big"], "1234", "{cut}");

    // A link copied in points where the program looks.
    let linked = server.run(with(
        sh("cat via/link"),
        json!({"copyIn": {"a.txt": {"content": "through\n"}, "via/link": {"symlink": "/w/a.txt"}}}),
    ));
    assert_eq!(linked["files"]["stdout"], "through\n", "{linked}");

    // A src outside every prefix is a bad request, and so is a link under
    // a prefix that leads out of it.
    std::os::unix::fs::symlink("/etc/passwd", sources.path().join("out")).unwrap();
    let (status, answer) = server.post(&json!({"cmd": [with(sh("true"), json!({"copyIn": {"x": {"src": format!("{prefix}/out")}}}))]}));
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = server.post(
        &json!({"cmd": [with(sh("true"), json!({"copyIn": {"x": {"src": "/etc/passwd"}}}))]}),
    );
    assert_eq!(status, 400, "{answer}");

    // copyOutCached, then the file store as copyIn and stdin.
    let cached = server.run(with(
        sh("echo compiled > prog"),
        json!({"copyOutCached": ["prog", "stdout"]}),
    ));
    let prog = cached["fileIds"]["prog"]
        .as_str()
        .expect("fileIds.prog")
        .to_string();
    assert!(cached["fileIds"]["stdout"].is_string(), "{cached}");
    assert!(cached["files"].get("stdout").is_none(), "{cached}");
    let reused = server.run(with(
        sh("cat prog; cat"),
        json!({
            "copyIn": {"prog": {"fileId": prog}},
            "files": [{"fileId": prog}, {"name": "stdout", "max": 100}, {"name": "stderr", "max": 100}],
        }),
    ));
    assert_eq!(
        reused["files"]["stdout"], "compiled\ncompiled\n",
        "{reused}"
    );
    let unknown = server.run(with(
        sh("true"),
        json!({"copyIn": {"p": {"fileId": "0123456789abcdef0123456789abcdef"}}}),
    ));
    assert_eq!(unknown["status"], "File Error", "{unknown}");
    assert_eq!(file_error_types(&unknown), ["CopyInOpenFile"]);
}

#[test]
fn links_and_traversal_stay_in_the_box() {
    skip_unless_privileged!();
    let server = Server::start(&[]);
    for name in ["../x", "a/../../x", "/etc/x", "/w/../x", ""] {
        let (status, answer) = server
            .post(&json!({"cmd": [with(sh("true"), json!({"copyIn": {name: {"content": "x"}}}))]}));
        assert_eq!(status, 400, "copyIn {name:?}: {answer}");
        assert!(
            answer.as_str().is_some_and(|line| !line.contains('\n')),
            "{answer}"
        );
    }

    // A link made by copyIn is never written through.
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().display().to_string();
    let planted = server.run(with(
        sh("ls -A"),
        json!({"copyIn": {"l": {"symlink": outside_path}, "l/evil": {"content": "x"}}}),
    ));
    assert_eq!(planted["status"], "File Error", "{planted}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    // Links, a FIFO and a directory the program leaves: none is followed
    // or read, and the FIFO does not hang the server.
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();
    let secret = format!("{outside_path}/secret");
    let script = format!(
        "ln -s {secret} out; ln -s {outside_path} d; ln -s /proc/1/root/etc/passwd magic; \
         mkfifo fifo; mkdir dir; ln out hard 2>/dev/null; true"
    );
    let result = server.run(with(
        sh(&script),
        json!({"copyOut": ["out", "d/secret", "magic", "fifo", "dir", "../../etc/passwd", "hard?"]}),
    ));
    assert_eq!(result["status"], "File Error", "{result}");
    let files = result["files"].as_object().cloned().unwrap_or_default();
    assert!(
        files
            .keys()
            .all(|name| name == "stdout" || name == "stderr"),
        "{result}"
    );
    assert!(!result.to_string().contains("host secret"), "{result}");
    let mut types = file_error_types(&result);
    types.sort();
    assert_eq!(
        types,
        // out, d/secret, magic, ../../etc/passwd, and hard: a hard link to the
        // link `out` is a link too.
        [
            "CopyOutNotRegularFile",
            "CopyOutNotRegularFile",
            "CopyOutOpen",
            "CopyOutOpen",
            "CopyOutOpen",
            "CopyOutOpen",
            "CopyOutOpen"
        ],
        "{result}"
    );
}

#[test]
fn boxes_come_back_clean() {
    skip_unless_privileged!();
    let server = Server::start(&["--box-size", "1M"]);
    let dirty = server.run(sh(
        "echo x > /w/left; mkdir -p /w/d/e; echo y > /tmp/left; chmod 000 /w/d",
    ));
    assert_eq!(dirty["status"], "Accepted", "{dirty}");
    let clean = server.run(sh("ls -A /w /tmp"));
    assert_eq!(clean["files"]["stdout"], "/tmp:\n\n/w:\n", "{clean}");

    // The box is a tmpfs of --box-size: a program cannot fill the host.
    let full = server.run(sh("head -c 2000000 /dev/zero > big"));
    assert_eq!(full["status"], "Nonzero Exit Status", "{full}");
    assert!(
        full["files"]["stderr"]
            .as_str()
            .unwrap()
            .contains("No space"),
        "{full}"
    );
    let clean = server.run(sh("ls -A /w; head -c 900000 /dev/zero > big && echo fits"));
    assert_eq!(clean["files"]["stdout"], "fits\n", "{clean}");
}

#[test]
fn the_file_store() {
    skip_unless_privileged!();
    let server = Server::start(&["--max-body", "64K"]);
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(b"stored\n".to_vec()).file_name("a.txt"),
    );
    let response = server
        .request(reqwest::Method::POST, "/file")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let id: String = response.json().unwrap();
    assert_eq!(id.len(), 32);
    let (status, list) = server.get("/file");
    assert_eq!(status, 200);
    assert_eq!(list[&id], "a.txt");
    let body = server
        .request(reqwest::Method::GET, &format!("/file/{id}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(body, "stored\n");
    let used = server.run(with(sh("cat a"), json!({"copyIn": {"a": {"fileId": id}}})));
    assert_eq!(used["files"]["stdout"], "stored\n", "{used}");

    let big = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(vec![b'x'; 100 << 10]).file_name("big"),
    );
    // The server answers 413 as soon as the body passes the cap; a client
    // still sending may see that answer or, when the server has closed the
    // connection first, a reset. Either way nothing is stored.
    let files_before = server
        .request(reqwest::Method::GET, "/file")
        .send()
        .unwrap()
        .text()
        .unwrap();
    match server
        .request(reqwest::Method::POST, "/file")
        .multipart(big)
        .send()
    {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        Err(error) => assert!(error.is_request() || error.is_body(), "{error}"),
    }
    let files_after = server
        .request(reqwest::Method::GET, "/file")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(files_before, files_after, "an oversize upload was stored");

    let delete = |id: &str| {
        server
            .request(reqwest::Method::DELETE, &format!("/file/{id}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(delete(&id), 200);
    assert_eq!(delete(&id), 404);
    assert_eq!(server.get(&format!("/file/{id}")).0, 404);
    assert_eq!(server.get("/file/..%2F..%2Fetc%2Fpasswd").0, 404);
    assert_eq!(server.get("/file").1, json!({}));
}

#[test]
fn authentication() {
    skip_unless_privileged!();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let mut server = Server::start(&["--auth-token-file", token_file.to_str().unwrap()]);
    assert_eq!(server.get("/version").0, 200);
    assert_eq!(server.get("/config").0, 401);
    assert_eq!(server.get("/file").0, 401);
    assert_eq!(server.post(&json!({"cmd": [sh("true")]})).0, 401);
    server.token = Some("wrong".into());
    assert_eq!(server.get("/config").0, 401);
    server.token = Some("s3cret".into());
    let (status, config) = server.get("/config");
    assert_eq!(status, 200);
    assert_eq!(config["fixSymlinkEscape"], true);
    assert_eq!(server.run(sh("true"))["status"], "Accepted");

    // Elsewhere than loopback without a token: refused at start.
    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without --auth-token-file"), "{stderr}");
}

#[test]
fn bad_requests_and_caps() {
    skip_unless_privileged!();
    let server = Server::start(&[
        "--max-body",
        "4K",
        "--limits-cap",
        "cpu=0.5,clock=1,memory=128M,copyouttotal=15,cmds=2",
    ]);
    for body in ["{", "[]", "{\"cmd\": 3}", "{\"cmd\": []}", "\u{0}"] {
        let (status, answer) = server.post_raw(body.to_string());
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(
            answer.as_str().is_some_and(|line| !line.contains('\n')),
            "{answer}"
        );
    }
    for cmd in [
        json!({"args": []}),
        json!({"args": ["/bin/true"], "env": ["NOEQUALS"]}),
        json!({"args": ["/bin/true"], "files": [{"name": "stdout", "max": 1}]}),
        json!({"args": ["/bin/true"], "files": [null, {"content": "x"}]}),
        json!({"args": ["/bin/true"], "files": [null, null, null, null]}),
        json!({"args": ["/bin/true"], "files": [null, {"name": "o", "max": -1}]}),
    ] {
        let (status, answer) = server.post(&json!({"cmd": [cmd]}));
        assert_eq!(status, 400, "{cmd}: {answer}");
    }
    let (status, answer) = server.post(&json!({"cmd": [sh("true"), sh("true"), sh("true")]}));
    assert_eq!(status, 400, "{answer}");
    let (status, _) = server.post_raw(format!(
        "{{\"cmd\":[{{\"args\":[\"{}\"]}}]}}",
        "x".repeat(8 << 10)
    ));
    assert_eq!(status, 413);

    // Limits above the caps are cut down to them.
    let asked_much = server.run(with(
        sh("sleep 10"),
        json!({"cpuLimit": 100_000_000_000u64, "clockLimit": 100_000_000_000u64, "memoryLimit": 8u64 << 30}),
    ));
    assert_eq!(asked_much["status"], "Time Limit Exceeded", "{asked_much}");
    assert!(
        asked_much["runTime"].as_u64().unwrap() < 3_000_000_000,
        "{asked_much}"
    );
    let (_, config) = server.get("/config");
    assert_eq!(
        config["runnerConfig"]["limitsCap"]["memoryLimit"],
        128u64 << 20
    );
    // One file named many times still counts each time against the total.
    let many = server.run(with(
        sh("printf 0123456789 > f"),
        json!({"copyOut": ["f", "./f", "/w/f"]}),
    ));
    assert_eq!(many["status"], "File Error", "{many}");
    assert_eq!(many["files"]["f"], "0123456789", "{many}");
    assert_eq!(
        file_error_types(&many),
        ["CopyOutSizeExceeded", "CopyOutSizeExceeded"],
        "{many}"
    );
    // The server still answers after all of it.
    assert_eq!(server.run(sh("true"))["status"], "Accepted");
}

fn processes_with_argument(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == needle.as_bytes())
            {
                found.push(pid);
            }
        }
    }
    found
}

#[test]
fn a_client_that_leaves_kills_its_run() {
    skip_unless_privileged!();
    let server = Server::start(&[]);
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let body = json!({"cmd": [with(sh("echo x > /w/left; exec sleep 27.5"), json!({"clockLimit": 60_000_000_000u64}))]});
    let started = Instant::now();
    let gone = impatient
        .post(format!("{}/run", server.url))
        .body(body.to_string())
        .send();
    assert!(gone.is_err(), "the run should outlast the client");
    // One box: the next request only runs once the abandoned run is dead
    // and its box reset.
    let next = server.run(sh("ls -A /w"));
    assert_eq!(next["status"], "Accepted", "{next}");
    assert_eq!(next["files"]["stdout"], "", "{next}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(processes_with_argument("27.5").is_empty());
}

/// What a server with this pid could leave: its directories, cgroups and
/// mounts.
fn leftovers(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for dir in [
        format!("/run/isobox/serve-{pid}"),
        format!("/run/isobox/serve-{pid}-files"),
    ] {
        if Path::new(&dir).exists() {
            found.push(dir);
        }
    }
    let prefix = format!("{pid}-");
    let roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|entry| entry.path().join("isobox"))
        .chain([PathBuf::from("/sys/fs/cgroup/isobox")])
        .collect();
    for root in roots {
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(entry.path().display().to_string());
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mounts.lines() {
        if line.contains(&format!("serve-{pid}")) {
            found.push(line.to_string());
        }
    }
    found
}

#[test]
fn stop_and_restart_leave_nothing() {
    skip_unless_privileged!();
    for _ in 0..2 {
        let mut server = Server::start(&["--parallelism", "2"]);
        let pid = server.pid();
        assert_eq!(server.run(sh("echo x > y"))["status"], "Accepted");
        let (_, stored) =
            server.post(&json!({"cmd": [with(sh("echo x > y"), json!({"copyOutCached": ["y"]}))]}));
        assert!(stored[0]["fileIds"]["y"].is_string());
        assert!(!leftovers(pid).is_empty(), "a running server has boxes");
        let status = server.stop();
        assert!(status.success(), "{status}");
        assert_eq!(leftovers(pid), Vec::<String>::new());
    }
}

/// The requests Hydro's judge builds (packages/hydrojudge/src/sandbox.ts,
/// `proc()`), for compiling and running a C program, and the fields it
/// reads back (`adaptResult`).
#[test]
fn hydro_compile_and_run() {
    skip_unless_privileged!();
    let server = Server::start(&[]);
    let (_, version) = server.get("/version");
    assert_eq!(version["copyOutOptional"], true);
    let build = version["buildVersion"].as_str().unwrap();
    let semver = build.split('v').nth(1).unwrap();
    assert!(semver.starts_with("1.9."), "{build}");
    let (_, config) = server.get("/config");
    assert!(matches!(
        config["runnerConfig"]["cgroupType"].as_u64(),
        Some(1 | 2)
    ));
    assert!(config["runnerConfig"]["cgroupControllers"]
        .as_array()
        .unwrap()
        .contains(&json!("memory")));
    assert_eq!(config["fixSymlinkEscape"], true);

    let env = json!([
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "HOME=/w",
        "HYDRO_LANG=c"
    ]);
    let stdio = |mb: u64| json!([{"content": ""}, {"name": "stdout", "max": mb << 20}, {"name": "stderr", "max": mb << 20}]);
    let compile = json!({"cmd": [{
        "args": ["/usr/bin/gcc", "-O2", "-w", "-o", "foo", "foo.c", "-lm"],
        "env": env,
        "files": stdio(4),
        "cpuLimit": 10_000_000_000u64,
        "clockLimit": 30_000_000_000u64,
        "memoryLimit": 512u64 << 20,
        "strictMemoryLimit": false,
        "stackLimit": 0,
        "procLimit": 32,
        "copyOutMax": 3 * (32u64 << 20),
        "copyIn": {"foo.c": {"content": "#include <stdio.h>\nint main(){int a,b;scanf(\"%d%d\",&a,&b);printf(\"%d\\n\",a+b);return 0;}\n"}},
        "copyOut": [],
        "copyOutCached": ["foo"],
    }]});
    let (status, compiled) = server.post(&compile);
    assert_eq!(status, 200, "{compiled}");
    let compiled = &compiled[0];
    assert_eq!(compiled["status"], "Accepted", "{compiled}");
    assert_eq!(compiled["files"]["stderr"], "", "{compiled}");
    let foo = compiled["fileIds"]["foo"]
        .as_str()
        .expect("fileIds.foo")
        .to_string();

    let run = json!({"cmd": [{
        "args": ["foo"],
        "env": env,
        "files": [{"content": "1 2\n"}, {"name": "stdout", "max": 32u64 << 20}, {"name": "stderr", "max": 32u64 << 20}],
        "cpuLimit": 1_000_000_000u64,
        "clockLimit": 3_000_000_000u64,
        "memoryLimit": 256u64 << 20,
        "stackLimit": 0,
        "procLimit": 32,
        "copyOutMax": 3 * (32u64 << 20),
        "copyIn": {"foo": {"fileId": foo}},
        "copyOut": [],
        "copyOutCached": ["stdout", "stderr"],
    }]});
    let (status, ran) = server.post(&run);
    assert_eq!(status, 200, "{ran}");
    let ran = &ran[0];
    assert_eq!(ran["status"], "Accepted", "{ran}");
    assert_eq!(ran["exitStatus"], 0);
    assert!(ran["time"].as_u64().unwrap() < 1_000_000_000);
    assert!(ran["memory"].as_u64().unwrap() < 256 << 20);
    let stdout_id = ran["fileIds"]["stdout"].as_str().expect("fileIds.stdout");
    let output = server
        .request(reqwest::Method::GET, &format!("/file/{stdout_id}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(output, "3\n");
    // Hydro disposes of every fileId it was given.
    for id in [
        foo.as_str(),
        stdout_id,
        ran["fileIds"]["stderr"].as_str().unwrap(),
    ] {
        let deleted = server
            .request(reqwest::Method::DELETE, &format!("/file/{id}"))
            .send()
            .unwrap();
        assert_eq!(deleted.status().as_u16(), 200);
    }
    assert_eq!(server.get("/file").1, json!({}));
}

/// An interactive pair as Hydro's `runPiped` wires it (judge/interactive.ts):
/// the user's program and the interactor, stdout of each to stdin of the
/// other, with and without the proxy keeping a copy of the traffic.
#[test]
fn interactive_pairs() {
    skip_unless_privileged!();
    let server = Server::start(&["--parallelism", "2"]);
    let stdio = json!([null, null, {"name": "stderr", "max": 1 << 20}]);
    let user = with(
        sh("read n; echo $((n * 2)); read verdict; echo \"user saw $verdict\" >&2"),
        json!({"files": stdio}),
    );
    let interactor = with(
        sh(
            "cat /w/in; read answer; if [ \"$answer\" = 42 ]; then echo ok; echo ok >&2; \
            echo 42 > /w/tout; else echo wrong >&2; fi",
        ),
        json!({"files": stdio, "copyIn": {"in": {"content": "21\n"}}, "copyOut": ["/w/tout?"]}),
    );
    for proxy in [true, false] {
        let (status, results) = server.post(&json!({
            "cmd": [user, interactor],
            "pipeMapping": [
                {"in": {"index": 0, "fd": 1}, "out": {"index": 1, "fd": 0}, "name": "userToInteractor", "max": 32 << 20, "proxy": proxy},
                {"in": {"index": 1, "fd": 1}, "out": {"index": 0, "fd": 0}, "name": "interactorToUser", "max": 32 << 20, "proxy": proxy},
            ],
        }));
        assert_eq!(status, 200, "{results}");
        let (user, interactor) = (&results[0], &results[1]);
        assert_eq!(user["status"], "Accepted", "{results}");
        assert_eq!(interactor["status"], "Accepted", "{results}");
        assert_eq!(interactor["files"]["stderr"], "ok\n", "{results}");
        assert_eq!(user["files"]["stderr"], "user saw ok\n", "{results}");
        assert_eq!(interactor["files"]["/w/tout"], "42\n", "{results}");
        if proxy {
            assert_eq!(user["files"]["userToInteractor"], "42\n", "{results}");
            assert_eq!(
                interactor["files"]["interactorToUser"], "21\nok\n",
                "{results}"
            );
        } else {
            assert!(user["files"].get("userToInteractor").is_none(), "{results}");
        }
    }

    // A solution that never answers: the interactor's wait ends at its
    // clock limit, and both boxes come back for the next request.
    let (status, results) = server.post(&json!({
        "cmd": [
            with(sh("sleep 30"), json!({"files": stdio, "clockLimit": 500_000_000u64})),
            with(sh("read answer; exec sleep 30"), json!({"files": stdio, "clockLimit": 500_000_000u64})),
        ],
        "pipeMapping": [
            {"in": {"index": 0, "fd": 1}, "out": {"index": 1, "fd": 0}},
            {"in": {"index": 1, "fd": 1}, "out": {"index": 0, "fd": 0}},
        ],
    }));
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["status"], "Time Limit Exceeded", "{results}");
    assert_eq!(results[1]["status"], "Time Limit Exceeded", "{results}");
    assert_eq!(server.run(sh("ls -A /w"))["files"]["stdout"], "");

    // Wired commands need boxes at once: more than the server has is a 400.
    let (status, answer) = server.post(&json!({
        "cmd": [with(sh("true"), json!({"files": stdio})), with(sh("true"), json!({"files": stdio})), sh("true")],
        "pipeMapping": [{"in": {"index": 0, "fd": 1}, "out": {"index": 1, "fd": 0}}],
    }));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.as_str().unwrap().contains("boxes at once"),
        "{answer}"
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON answer on a WebSocket, within 20 s.
async fn next_answer(socket: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str::<Value>(text.as_str()).unwrap()
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

/// go-judge's `/ws`: requests on one connection, answered by `requestId`,
/// one of them cancelled by `cancelRequestId`.
#[test]
fn websocket_requests_and_cancel() {
    skip_unless_privileged!();
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start(&["--parallelism", "2"]);
    let url = server.url.replace("http://", "ws://") + "/ws";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let slow = json!({"requestId": "slow", "cmd": [with(sh("exec sleep 28.5"), json!({"clockLimit": 60_000_000_000u64}))]});
        let fast = json!({"requestId": "fast", "cmd": [sh("echo fast")]});
        socket.send(Message::text(slow.to_string())).await.unwrap();
        socket.send(Message::text(fast.to_string())).await.unwrap();
        let first = next_answer(&mut socket).await;
        assert_eq!(first["requestId"], "fast", "{first}");
        assert_eq!(first["results"][0]["files"]["stdout"], "fast\n", "{first}");
        let started = Instant::now();
        socket
            .send(Message::text(json!({"cancelRequestId": "slow"}).to_string()))
            .await
            .unwrap();
        let second = next_answer(&mut socket).await;
        assert_eq!(second["requestId"], "slow", "{second}");
        assert_ne!(second["results"][0]["status"], "Accepted", "{second}");
        assert!(started.elapsed() < Duration::from_secs(10));
        socket.send(Message::text("{")).await.unwrap();
        let bad = next_answer(&mut socket).await;
        assert!(bad["error"].as_str().unwrap().starts_with("bad request"), "{bad}");
    });
    assert!(processes_with_argument("28.5").is_empty());
}

#[test]
fn a_full_queue_is_refused_and_stop_drains() {
    skip_unless_privileged!();
    let mut server = Server::start(&["--queue", "0", "--metrics-listen", "127.0.0.1:0"]);
    let pid = server.pid();
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.run(sh("sleep 1; echo slept")));
        std::thread::sleep(Duration::from_millis(300));
        let (status, answer) = server.post(&json!({"cmd": [sh("true")]}));
        assert_eq!(status, 503, "{answer}");
        let metrics =
            reqwest::blocking::get(format!("{}/metrics", server.metrics.as_ref().unwrap()))
                .unwrap()
                .text()
                .unwrap();
        assert!(metrics.contains("isobox_busy_total 1"), "{metrics}");
        assert!(metrics.contains("isobox_pool_boxes 1"), "{metrics}");
        assert_eq!(slow.join().unwrap()["files"]["stdout"], "slept\n");
    });
    // SIGTERM while a run is in flight: it finishes and is answered.
    std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| server.run(sh("sleep 1; echo drained")));
        std::thread::sleep(Duration::from_millis(300));
        let child = server.child.as_ref().unwrap();
        // SAFETY: kill only signals the server this test started and has not
        // reaped yet, so its pid cannot have been reused.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert_eq!(in_flight.join().unwrap()["files"]["stdout"], "drained\n");
    });
    assert!(server.stop().success());
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// Hostile programs of `tests/programs/hostile/` through the service, with
/// the limits of the hostile suite: the same verdicts as through the
/// library, in go-judge's words.
#[test]
fn hostile_programs_through_the_service() {
    skip_unless_privileged!();
    let programs: Vec<String> = ["forkbomb", "threadbomb", "memory"]
        .iter()
        .map(|name| hostile(name))
        .collect();
    let server = Server::start(&["--src-prefix", &dir_of(&programs[0])]);
    let hostile_cmd = |program: &str, cpu_seconds: u64| {
        json!({
            "args": ["prog"],
            "files": [null, {"name": "stdout", "max": 65536}, {"name": "stderr", "max": 65536}],
            "copyIn": {"prog": {"src": program}},
            "cpuLimit": cpu_seconds * 1_000_000_000,
            "clockLimit": 10_000_000_000u64,
            "memoryLimit": 128u64 << 20,
            "procLimit": 16,
        })
    };
    let fork_bomb = server.run(hostile_cmd(&programs[0], 1));
    assert_eq!(fork_bomb["status"], "Time Limit Exceeded", "{fork_bomb}");
    assert_eq!(
        fork_bomb["files"]["stdout"], "fork refused: EAGAIN\n",
        "{fork_bomb}"
    );
    let thread_bomb = server.run(hostile_cmd(&programs[1], 2));
    assert_eq!(
        thread_bomb["status"], "Nonzero Exit Status",
        "{thread_bomb}"
    );
    assert!(
        thread_bomb["files"]["stdout"]
            .as_str()
            .unwrap()
            .ends_with(": EAGAIN\n"),
        "{thread_bomb}"
    );
    let memory = server.run(hostile_cmd(&programs[2], 2));
    assert_eq!(memory["status"], "Memory Limit Exceeded", "{memory}");
    // And the box is fine afterwards.
    assert_eq!(server.run(sh("ls -A /w"))["files"]["stdout"], "");
}

/// A server killed with SIGKILL cannot clean up; the next one removes what
/// it left.
#[test]
fn remains_of_a_killed_server_are_swept() {
    skip_unless_privileged!();
    let mut killed = Server::start(&["--parallelism", "2"]);
    let pid = killed.pid();
    assert_eq!(killed.run(sh("echo x > y"))["status"], "Accepted");
    let mut child = killed.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!leftovers(pid).is_empty(), "SIGKILL leaves boxes");
    let next = Server::start(&[]);
    assert_eq!(leftovers(pid), Vec::<String>::new());
    assert_eq!(next.run(sh("true"))["status"], "Accepted");
}

/// Commands of one request run at once when the pool has boxes for all of
/// them, one by one otherwise; either way each gets its own result.
#[test]
fn several_commands_in_one_request() {
    skip_unless_privileged!();
    let server = Server::start(&["--parallelism", "2"]);
    let started = Instant::now();
    let (status, results) =
        server.post(&json!({"cmd": [sh("sleep 1; echo a"), sh("sleep 1; echo b")]}));
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["files"]["stdout"], "a\n");
    assert_eq!(results[1]["files"]["stdout"], "b\n");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let (status, results) =
        server.post(&json!({"cmd": [sh("echo 1"), sh("exit 2"), sh("echo 3")]}));
    assert_eq!(status, 200, "{results}");
    assert_eq!(results[0]["files"]["stdout"], "1\n");
    assert_eq!(results[1]["status"], "Nonzero Exit Status");
    assert_eq!(results[2]["files"]["stdout"], "3\n");
}

#[test]
fn stored_files_expire() {
    skip_unless_privileged!();
    let server = Server::start(&["--file-ttl", "0.5"]);
    let stored = server.run(with(sh("echo x > y"), json!({"copyOutCached": ["y"]})));
    let id = stored["fileIds"]["y"].as_str().unwrap().to_string();
    assert_eq!(server.get(&format!("/file/{id}")).0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.get(&format!("/file/{id}")).0, 404);
}

#[test]
fn extra_directory_rules() {
    skip_unless_privileged!();
    use std::os::unix::fs::PermissionsExt;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(shared.path().join("data"), "shared data\n").unwrap();
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rules.path(),
        format!("# test data\n/data={}\n", shared.path().display()),
    )
    .unwrap();
    let server = Server::start(&[
        "--mount-file",
        rules.path().to_str().unwrap(),
        "--dir",
        "/opt/nothing:maybe",
    ]);
    let result = server.run(sh("cat /data/data; echo x > /data/new"));
    assert_eq!(result["files"]["stdout"], "shared data\n", "{result}");
    assert_eq!(
        result["status"], "Nonzero Exit Status",
        "read-only: {result}"
    );
    assert!(!shared.path().join("new").exists());
}

/// The cgroups a run of `server`'s boxes can be born in (`run-N` cold,
/// `held-N` warm on v2, `warm-N` warm on v1) in `hierarchy` (a v1
/// controller's mount, or the v2 root), with `file` in them.
fn run_cgroup_files(server_pid: u32, hierarchy: &Path, file: &str) -> Vec<PathBuf> {
    let Ok(instances) = std::fs::read_dir(hierarchy.join("isobox")) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for instance in instances.flatten() {
        if !instance
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{server_pid}-"))
        {
            continue;
        }
        for run in std::fs::read_dir(instance.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = run.path().join(file);
            let name = run.file_name().to_string_lossy().into_owned();
            let a_run_cgroup = ["run-", "held-", "warm-"]
                .iter()
                .any(|prefix| name.starts_with(prefix));
            if a_run_cgroup && path.exists() {
                found.push(path);
            }
        }
    }
    found
}

/// `cpuRateLimit` is a CFS quota of rate/1000 CPUs per 100 ms period,
/// `cpuSetLimit` the run's cpuset, both within the caps and refused by a
/// server without `--cpu-controls`; `procPeak` is the run's `pids.peak`,
/// the proxy left out.
#[test]
fn cpu_controls_and_proc_peak() {
    skip_unless_privileged!();
    let spin = program("spin_cpu");
    let server = Server::start(&["--cpu-controls", "--src-prefix", &dir_of(&spin)]);
    let (_, config) = server.get("/config");
    assert_eq!(config["runnerConfig"]["cpuControls"], true, "{config}");

    // A quarter of a CPU, seen in the run's cgroup while it runs, and in
    // what the program gets: under a second of wall clock it cannot use
    // much more than a quarter of a second of CPU.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (hierarchy, file) = if v2 {
        (PathBuf::from("/sys/fs/cgroup"), "cpu.max")
    } else {
        (PathBuf::from("/sys/fs/cgroup/cpu"), "cpu.cfs_quota_us")
    };
    let spinner = json!({
        "args": ["spin", "100"],
        "copyIn": {"spin": {"src": spin}},
        "cpuLimit": 5_000_000_000u64,
        "clockLimit": 1_000_000_000u64,
        "memoryLimit": 64u64 << 20,
        "procLimit": 4,
        "cpuRateLimit": 250,
    });
    let pid = server.pid();
    let unlimited = if v2 { "max 100000" } else { "-1" };
    let quota = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            // A cgroup is made with no quota and given the run's limits
            // before the program is born in it: a look between the two
            // sees no quota, so only a quota seen counts.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut seen = None;
            while Instant::now() < deadline {
                for path in run_cgroup_files(pid, &hierarchy, file) {
                    if let Ok(text) = std::fs::read_to_string(path) {
                        let text = text.trim().to_string();
                        if text != unlimited {
                            return Some(text);
                        }
                        seen = Some(text);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        let throttled = server.run(spinner.clone());
        assert_eq!(throttled["status"], "Time Limit Exceeded", "{throttled}");
        let cpu = throttled["time"].as_u64().unwrap();
        assert!(
            cpu < 600_000_000,
            "{cpu} ns of CPU at a quarter of a CPU: {throttled}"
        );
        watcher.join().unwrap()
    });
    let expected = if v2 { "25000 100000" } else { "25000" };
    assert_eq!(quota.as_deref(), Some(expected));

    // The cpuset, as the program sees it.
    let pinned = server.run(with(
        sh("grep Cpus_allowed_list /proc/self/status"),
        json!({"cpuSetLimit": "0"}),
    ));
    assert_eq!(pinned["status"], "Accepted", "{pinned}");
    assert_eq!(
        pinned["files"]["stdout"], "Cpus_allowed_list:\t0\n",
        "{pinned}"
    );
    for bad in [
        json!({"cpuSetLimit": "0-"}),
        json!({"cpuSetLimit": "4000"}),
        json!({"cpuRateLimit": 5}),
    ] {
        let (status, answer) = server.post(&json!({"cmd": [with(sh("true"), bad.clone())]}));
        assert_eq!(status, 400, "{bad}: {answer}");
    }

    // Three processes at most: the shell and two sleeps. On cgroup v1 the
    // pool's boxes are warm: their cgroup outlives a run, and the kernel's
    // peak cannot be started over, so no figure is given.
    let peak = server.run(sh("sleep 0.2 & sleep 0.2 & wait"));
    assert_eq!(peak["status"], "Accepted", "{peak}");
    let counted = v2 && Path::new("/sys/fs/cgroup/isobox/pids.peak").exists();
    if counted {
        assert_eq!(peak["procPeak"], 3, "{peak}");
    } else {
        assert!(peak.get("procPeak").is_none(), "{peak}");
    }

    // Without --cpu-controls, or past the caps.
    let plain = Server::start(&[]);
    let (status, answer) =
        plain.post(&json!({"cmd": [with(sh("true"), json!({"cpuRateLimit": 500}))]}));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.as_str().unwrap().contains("--cpu-controls"),
        "{answer}"
    );
    drop(plain);
    let capped = Server::start(&["--limits-cap", "cpuset=0,cpurate=500"]);
    let pinned = capped.run(sh("grep Cpus_allowed_list /proc/self/status"));
    assert_eq!(
        pinned["files"]["stdout"], "Cpus_allowed_list:\t0\n",
        "{pinned}"
    );
    let (status, answer) =
        capped.post(&json!({"cmd": [with(sh("true"), json!({"cpuSetLimit": "0-1"}))]}));
    assert_eq!(status, 400, "{answer}");
}

/// The CPUs a run may use, as its program sees them.
fn cpus_of_run(server: &Server) -> String {
    let result = server.run(sh("sleep 0.3; grep Cpus_allowed_list /proc/self/status"));
    assert_eq!(result["status"], "Accepted", "{result}");
    let stdout = result["files"]["stdout"].as_str().unwrap();
    stdout
        .trim()
        .strip_prefix("Cpus_allowed_list:")
        .unwrap_or_else(|| panic!("{result}"))
        .trim()
        .to_string()
}

/// With no more boxes than CPUs, each box runs on a CPU of its own
/// (`--cpu-pinning auto`, the default): runs at once are on different
/// CPUs. With `off`, or more boxes than CPUs, a run may use every CPU.
#[test]
fn each_box_is_on_a_cpu_of_its_own_unless_pinning_is_off() {
    skip_unless_privileged!();
    let mine = isobox::cpus::CpuList::of_this_thread().unwrap();
    let boxes = mine.count().min(2) as usize;
    if boxes < 2 {
        eprintln!("NOTE: one CPU here ({mine}): one box, no spread to see");
    }
    let server = Server::start(&["--parallelism", &boxes.to_string()]);
    let seen: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..boxes)
            .map(|_| scope.spawn(|| cpus_of_run(&server)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let placed: isobox::cpus::CpuList = seen
        .iter()
        .map(|cpus| {
            cpus.parse::<u32>()
                .unwrap_or_else(|_| panic!("one CPU per box: {seen:?}"))
        })
        .collect();
    assert_eq!(placed.count() as usize, boxes, "a CPU each: {seen:?}");
    assert!(placed.is_subset(&mine), "{seen:?} outside {mine}");
    drop(server);

    let everywhere = mine.to_string();
    let off = Server::start(&["--parallelism", "1", "--cpu-pinning", "off"]);
    assert_eq!(cpus_of_run(&off), everywhere);
    drop(off);
    let crowded = Server::start(&["--parallelism", &(mine.count() + 1).to_string()]);
    assert_eq!(cpus_of_run(&crowded), everywhere);
    drop(crowded);

    let output = Command::new(env!("CARGO_BIN_EXE_isobox"))
        .args(["serve", "--cpu-pinning", "sideways"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("sideways"), "{stderr}");
}

/// `addressSpaceLimit` is `RLIMIT_AS` at the memory limit, `stackLimit` is
/// `RLIMIT_STACK` (0: the memory limit), and `tty` is refused, not ignored.
#[test]
fn rlimits_of_a_request() {
    skip_unless_privileged!();
    let server = Server::start(&[]);
    let limits = |extra: Value| {
        let result = server.run(with(
            sh("ulimit -v; ulimit -s; ulimit -d"),
            with(json!({"memoryLimit": 64u64 << 20}), extra),
        ));
        assert_eq!(result["status"], "Accepted", "{result}");
        result["files"]["stdout"].as_str().unwrap().to_string()
    };
    assert_eq!(limits(json!({})), "unlimited\n65536\nunlimited\n");
    assert_eq!(
        limits(json!({"addressSpaceLimit": true, "stackLimit": 8u64 << 20})),
        "65536\n8192\nunlimited\n"
    );
    // go-judge's dataSegmentLimit, and strictMemoryLimit (its older name).
    for flag in ["dataSegmentLimit", "strictMemoryLimit"] {
        assert_eq!(
            limits(json!({ flag: true })),
            "unlimited\n65536\n65536\n",
            "{flag}"
        );
    }
    let (status, answer) = server.post(&json!({"cmd": [with(sh("true"), json!({"tty": true}))]}));
    assert_eq!(status, 400, "{answer}");
}
