//! The controls of the hostile suite: the default jail still runs ordinary
//! programs (a shell script, a C program, a Python program using the
//! standard library) that read their input from /box and write their
//! output there, and the output belongs to the box user on the host.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{assert_output, hostile, skip_unless_privileged, TestBox};

const INPUT: &str = "5\n3\n10\n-4\n";

/// A box with the input file in place.
fn box_with_input() -> TestBox {
    let test_box = TestBox::hostile();
    fs::write(test_box.workdir().join("input.txt"), INPUT).unwrap();
    test_box
}

/// Reads an output file the program wrote, checking it belongs to the box
/// user.
fn output_of(test_box: &TestBox, name: &str) -> String {
    let path = test_box.workdir().join(name);
    let meta = fs::metadata(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!((meta.uid(), meta.gid()), (test_box.uid, test_box.uid));
    fs::read_to_string(path).unwrap()
}

/// Control: an ordinary shell script (sort, wc, arithmetic) runs.
#[test]
fn ordinary_shell_script() {
    skip_unless_privileged!();
    let test_box = box_with_input();
    let script = test_box.install(&hostile("ordinary.sh"));
    let result = test_box.run_hostile(&[&script]);
    assert_output(&result, "done 4 lines\n");
    assert_eq!(output_of(&test_box, "output.txt"), "-4 3 5 10 \nsum 14\n");
    test_box.remove();
}

/// Control: an ordinary C program runs.
#[test]
fn ordinary_c_program() {
    skip_unless_privileged!();
    let test_box = box_with_input();
    let program = test_box.install(&hostile("ordinary"));
    let result = test_box.run_hostile(&[&program]);
    assert_output(&result, "done 4\n");
    assert_eq!(output_of(&test_box, "output.txt"), "-4 3 5 10 \nsum 14\n");
    test_box.remove();
}

/// Control: an ordinary Python program using the standard library runs.
#[test]
fn ordinary_python_program() {
    skip_unless_privileged!();
    let mut test_box = box_with_input();
    test_box.allow_python();
    let program = test_box.install(&hostile("ordinary.py"));
    let result = test_box.run_hostile(&["/usr/bin/python3", &program]);
    assert_output(&result, "done 4\n");
    let output: serde_json::Value =
        serde_json::from_str(&output_of(&test_box, "output.json")).unwrap();
    assert_eq!(output["sum"], 14);
    assert_eq!(output["mean"], 3.5);
    assert_eq!(output["mod3"], serde_json::json!({"0": 1, "1": 1, "2": 2}));
    assert_eq!(output["cwd"], "/box");
    assert_eq!(output["year_ok"], true);
    test_box.remove();
}
