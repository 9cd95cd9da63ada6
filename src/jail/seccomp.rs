//! The system-call filter of the inmate.
//!
//! The policy is data: `policy/seccomp-default.json`. It is an allowlist
//! (every call no `allow` group names fails with `ENOSYS`, what a kernel
//! without the call would say, so libc falls back for calls newer than the
//! list) followed by `refuse` groups that give calls the kernel has, or
//! particular arguments of allowed calls, their own errno. Groups may depend
//! on the run ([`PolicyOptions`]): isolate's `syscall_flags` bits, the
//! network switch and whether a memory limit lacks a memory cgroup.
//!
//! The groups become sections of one program: one per refusal errno
//! (seccompiler's back end, fed the numbers of `seccomp_x86_64`), highest
//! errno first, then the allowlist (a binary search over the allowed call
//! numbers, built here). A refusal section that matches returns its errno;
//! one that does not jumps to the next section, and the allowlist answers
//! `ENOSYS` or allows. In front of the sections, a search over ranges of
//! call numbers answers every call whose answer no argument changes (allowed,
//! unknown, or refused outright by the highest errno naming it), so only
//! calls whose arguments decide reach the sections. That is exactly what
//! the kernel made of the same sections installed as separate filters,
//! allowlist first (the strictest answer wins, and of two errno answers
//! the one of the filter installed last), at the price of one installation
//! instead of one per errno (each installation JIT-compiles its filter and
//! runs it for every call number to fill the kernel's cache of
//! always-allowed calls). The filters of a policy extension file
//! (seccompiler's own JSON format) stay separate filters installed after
//! it, so an extension can only take more away.
//!
//! Two checks no JSON rule can express come in front: x32 system-call
//! numbers (bit 30 set) kill the process, and so do calls through the i386
//! entry (`int $0x80`), unless isolate's "legacy architectures" bit is clear;
//! then an i386 section built from the same groups (with the i386 numbers)
//! judges them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};

use super::seccomp_i386::I386_SYSCALLS;
use super::seccomp_x86_64;
use crate::config::syscall_flags;

/// The default policy, embedded so the binary needs no data files.
pub(crate) const DEFAULT_POLICY: &str = include_str!("../../policy/seccomp-default.json");

/// What the policy's conditional groups depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyOptions {
    /// isolate's `syscall_flags` (see [`syscall_flags`]).
    pub syscall_flags: u32,
    /// The box shares the host's network: `AF_INET` and `AF_INET6` sockets
    /// are allowed.
    pub share_net: bool,
    /// A memory limit is set but no memory cgroup enforces it.
    pub memory_without_cgroup: bool,
    /// The box's IPC namespace could not be sized to the memory limit (a
    /// box in a user namespace may not write its IPC sysctls), while no
    /// memory cgroup bounds what its System V segments and queues hold.
    pub ipc_unsized: bool,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        Self {
            syscall_flags: syscall_flags::ALL,
            share_net: false,
            memory_without_cgroup: false,
            ipc_unsized: false,
        }
    }
}

/// Errors of building a policy.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The policy file cannot be read.
    #[error("seccomp policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The policy does not compile.
    #[error("seccomp policy {origin}: {reason}")]
    Compile {
        /// Which policy.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

fn compile_error(origin: &str, reason: impl ToString) -> SeccompError {
    SeccompError::Compile {
        origin: origin.to_string(),
        reason: reason.to_string(),
    }
}

/// The policy file's format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    // The prose of the file (here and in each group's `why`) is for its
    // readers: skipped, not kept, since the file is read at every
    // command-line run.
    #[serde(default)]
    #[allow(dead_code)]
    about: serde::de::IgnoredAny,
    unknown_calls_errno: u32,
    allow: Vec<AllowGroup>,
    refuse: Vec<RefuseGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowGroup {
    group: String,
    #[allow(dead_code)]
    why: serde::de::IgnoredAny,
    #[serde(default)]
    when: When,
    calls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefuseGroup {
    group: String,
    #[allow(dead_code)]
    why: serde::de::IgnoredAny,
    errno: u32,
    #[serde(default)]
    when: When,
    rules: Vec<Rule>,
}

/// When a group applies; every field given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct When {
    flags_set: Option<u32>,
    flags_clear: Option<u32>,
    share_net: Option<bool>,
    memory_without_cgroup: Option<bool>,
    ipc_unsized: Option<bool>,
}

impl When {
    fn holds(&self, options: &PolicyOptions) -> bool {
        self.flags_set
            .is_none_or(|bits| options.syscall_flags & bits == bits)
            && self
                .flags_clear
                .is_none_or(|bits| options.syscall_flags & bits == 0)
            && self.share_net.is_none_or(|want| options.share_net == want)
            && self
                .memory_without_cgroup
                .is_none_or(|want| options.memory_without_cgroup == want)
            && self
                .ipc_unsized
                .is_none_or(|want| options.ipc_unsized == want)
    }
}

/// A rule in seccompiler's JSON syntax: the call, and conditions that must
/// all hold.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    syscall: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    index: u8,
    #[serde(rename = "type")]
    width: Width,
    op: Op,
    val: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Width {
    Dword,
    Qword,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Eq,
    Ne,
    MaskedEq(u64),
}

/// x32 system calls are the x86_64 numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;
// Classic BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JA: u16 = 0x05;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret_errno(errno: u32) -> sock_filter {
    stmt(
        BPF_RET_K,
        libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA),
    )
}

/// Kills the process for an x32 system call, before any other rule runs.
fn x32_guard() -> [sock_filter; 3] {
    [
        stmt(BPF_LD_W_ABS, DATA_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

/// Compiled filters, ready to install between fork and exec.
#[derive(Debug, Clone)]
pub(crate) struct SeccompPolicy {
    /// Shared, so the copy each run's plan takes costs no allocation.
    programs: std::sync::Arc<[BpfProgram]>,
}

/// Compiles one seccompiler JSON document; filters sorted by name so the
/// order of installation is stable.
fn compile_json(json: &str, origin: &str) -> Result<Vec<BpfProgram>, SeccompError> {
    let map = seccompiler::compile_from_json(json.as_bytes(), TargetArch::x86_64)
        .map_err(|err| compile_error(origin, err))?;
    let mut named: Vec<_> = map.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named.into_iter().map(|(_, program)| program).collect())
}

/// One seccompiler filter as JSON.
#[cfg(test)]
fn filter_json(
    name: &str,
    mismatch: serde_json::Value,
    matched: serde_json::Value,
    rules: &[Rule],
) -> String {
    serde_json::json!({
        name: {
            "mismatch_action": mismatch,
            "match_action": matched,
            "filter": rules,
        }
    })
    .to_string()
}

/// The policy's groups that apply to one run.
struct Selected<'a> {
    unknown_errno: u32,
    allowed: BTreeSet<&'a str>,
    /// Refusal rules by errno.
    refusals: BTreeMap<u32, Vec<Rule>>,
}

fn select<'a>(file: &'a PolicyFile, options: &PolicyOptions) -> Selected<'a> {
    let allowed = file
        .allow
        .iter()
        .filter(|group| group.when.holds(options))
        .flat_map(|group| group.calls.iter().map(String::as_str))
        .collect();
    let mut refusals: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for group in file.refuse.iter().filter(|group| group.when.holds(options)) {
        refusals
            .entry(group.errno)
            .or_default()
            .extend(group.rules.iter().cloned());
    }
    Selected {
        unknown_errno: file.unknown_calls_errno,
        allowed,
        refusals,
    }
}

fn parse(json: &str, origin: &str) -> Result<PolicyFile, SeccompError> {
    let file: PolicyFile = serde_json::from_str(json).map_err(|err| compile_error(origin, err))?;
    let mut names = BTreeSet::new();
    for group in file
        .allow
        .iter()
        .map(|g| &g.group)
        .chain(file.refuse.iter().map(|g| &g.group))
    {
        if !names.insert(group) {
            return Err(compile_error(
                origin,
                format!("group {group:?} appears twice"),
            ));
        }
    }
    Ok(file)
}

/// The x86_64 number of the call `name`.
fn native_number(name: &str, origin: &str) -> Result<u32, SeccompError> {
    seccomp_x86_64::number(name)
        .ok_or_else(|| compile_error(origin, format!("unknown system call {name:?}")))
}

/// The x86_64 filters of the selected groups as separate programs: the
/// allowlist, then one filter per refusal errno, in ascending errno order;
/// how they were installed before they were merged, kept as the reference
/// the merged program is checked against.
#[cfg(test)]
fn native_programs(selected: &Selected, origin: &str) -> Result<Vec<BpfProgram>, SeccompError> {
    let allowed = selected
        .allowed
        .iter()
        .map(|name| native_number(name, origin))
        .collect::<Result<BTreeSet<u32>, _>>()?;
    let mut programs = vec![allowlist_program(&allowed, selected.unknown_errno)];
    for (errno, rules) in &selected.refusals {
        programs.push(refusal_program(*errno, rules, origin)?);
    }
    Ok(programs)
}

/// The instructions of a native filter after its architecture check (the
/// load of the architecture, the comparison with x86_64 and the kill),
/// which the merged program makes once for all of them.
fn without_arch_check(program: &[sock_filter]) -> Result<&[sock_filter], SeccompError> {
    let expected = program.len() > 4
        && program[0].code == BPF_LD_W_ABS
        && program[0].k == DATA_ARCH
        && program[1].code == BPF_JEQ_K
        && (program[1].k, program[1].jt, program[1].jf) == (AUDIT_ARCH_X86_64, 1, 0)
        && program[2].code == BPF_RET_K
        && program[2].k == libc::SECCOMP_RET_KILL_PROCESS
        // The body loads what it compares before it compares it, so it
        // never reads the accumulator the check left behind.
        && program[3].code == BPF_LD_W_ABS;
    if !expected {
        return Err(compile_error(
            "default",
            "unexpected architecture check in a compiled filter",
        ));
    }
    Ok(&program[3..])
}

/// What a range of call numbers gets in [`range_tree`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Return this (`ALLOW` or an errno).
    Return(u32),
    /// A refusal names the call: on to the refusal sections.
    Judge,
}

/// A `BPF_JA` offset standing for "to the refusal sections" until
/// [`shortcut`] knows where they start.
const TO_SECTIONS: u32 = u32::MAX;

/// Appends a binary search over `runs` (each the first call number of a
/// range and its answer, sorted; the first range also takes every number
/// below it) that ends in the answer of the accumulator's range. A search
/// over ranges of equal answers is a few instructions for hundreds of
/// calls: the whole policy's calls fit in some two hundred.
fn range_tree(runs: &[(u32, Answer)], program: &mut BpfProgram) {
    if let [(_, answer)] = runs {
        program.push(match answer {
            Answer::Return(value) => stmt(BPF_RET_K, *value),
            Answer::Judge => stmt(BPF_JA, TO_SECTIONS),
        });
        return;
    }
    let (low, high) = runs.split_at(runs.len() / 2);
    let mut below = Vec::new();
    range_tree(low, &mut below);
    match u8::try_from(below.len()) {
        Ok(skip) => program.push(jump(BPF_JGE_K, high[0].0, skip, 0)),
        Err(_) => {
            program.push(jump(BPF_JGE_K, high[0].0, 0, 1));
            program.push(stmt(BPF_JA, below.len() as u32));
        }
    }
    program.extend(below);
    range_tree(high, program);
}

/// `answers` (call number, answer) as runs for [`range_tree`]: neighbours
/// with the same answer merge, and so do numbers `answers` leaves out
/// with the run before them (their answer does not matter).
fn runs_of(answers: impl IntoIterator<Item = (u32, Answer)>) -> Vec<(u32, Answer)> {
    let mut runs: Vec<(u32, Answer)> = Vec::new();
    for (nr, answer) in answers {
        if runs.last().is_none_or(|(_, last)| *last != answer) {
            runs.push((nr, answer));
        }
    }
    runs
}

/// The front of the merged program (the call number loaded): a search
/// over ranges of call numbers that answers at once for every call no
/// refusal rule needs to judge (`ALLOW` when the allowlist has it,
/// `unknown_errno` otherwise, the errno of [`Triage::outright`] for the
/// calls refused whatever their arguments), so those calls skip the
/// refusal sections, whose rules compare call numbers one by one. Calls
/// whose arguments decide go on to the sections. The kernel, which runs
/// the filter for every call number when it installs it, then also finds
/// the plainly allowed calls in a few steps and caches them as always
/// allowed.
fn shortcut(selected: &Selected, allowed: &BTreeSet<u32>, triage: &Triage) -> BpfProgram {
    let Triage { outright, judged } = triage;
    let highest = allowed
        .iter()
        .chain(judged)
        .chain(outright.keys())
        .max()
        .copied()
        .unwrap_or(0);
    // Every number up to one past the highest listed: the last run takes
    // everything above (the x32 guard has killed the rest). The answers
    // are laid down weakest first, each kind over the one before.
    let mut answers = vec![
        Answer::Return(libc::SECCOMP_RET_ERRNO | selected.unknown_errno);
        highest as usize + 2
    ];
    for &nr in allowed {
        answers[nr as usize] = Answer::Return(libc::SECCOMP_RET_ALLOW);
    }
    for &nr in judged {
        answers[nr as usize] = Answer::Judge;
    }
    for (&nr, errno) in outright {
        answers[nr as usize] = Answer::Return(libc::SECCOMP_RET_ERRNO | errno);
    }
    let mut program = Vec::new();
    range_tree(&runs_of((0..).zip(answers)), &mut program);
    let end = program.len();
    for (at, instruction) in program.iter_mut().enumerate() {
        if instruction.code == BPF_JA && instruction.k == TO_SECTIONS {
            instruction.k = (end - at - 1) as u32;
        }
    }
    program
}

/// The call numbers the refusal rules name, in two kinds.
struct Triage {
    /// The calls whose answer no argument changes, with that answer's
    /// errno: those that the highest errno naming them refuses whatever
    /// their arguments (every rule it has for them is without conditions).
    /// That errno's section would answer first and always refuse, so the
    /// sections need not see them at all, which keeps the program short:
    /// the kernel compiles it at every installation, once per run, in time
    /// that grows with its length (about 0.17 µs an instruction here).
    outright: BTreeMap<u32, u32>,
    /// The others, which the refusal sections judge by their arguments.
    judged: BTreeSet<u32>,
}

fn triage(selected: &Selected) -> Result<Triage, SeccompError> {
    let mut decided = BTreeSet::new();
    let mut outright = BTreeMap::new();
    for (errno, rules) in selected.refusals.iter().rev() {
        let mut named = BTreeSet::new();
        let mut conditional = BTreeSet::new();
        for rule in rules {
            let nr = native_number(&rule.syscall, "default")?;
            named.insert(nr);
            if !rule.args.is_empty() {
                conditional.insert(nr);
            }
        }
        for nr in named {
            // Named by a higher errno too: that section decides first,
            // outright or by the arguments.
            if decided.insert(nr) && !conditional.contains(&nr) {
                outright.insert(nr, *errno);
            }
        }
    }
    let judged = decided
        .into_iter()
        .filter(|nr| !outright.contains_key(nr))
        .collect();
    Ok(Triage { outright, judged })
}

/// The allowlist's answer for the calls the refusal sections let through,
/// which are only those of [`Triage::judged`]: a search over their
/// ranges, the numbers between them left to either neighbour.
fn judged_allowlist(
    selected: &Selected,
    allowed: &BTreeSet<u32>,
    judged: &BTreeSet<u32>,
) -> BpfProgram {
    let answers = judged.iter().map(|&nr| {
        let answer = if allowed.contains(&nr) {
            libc::SECCOMP_RET_ALLOW
        } else {
            libc::SECCOMP_RET_ERRNO | selected.unknown_errno
        };
        (nr, Answer::Return(answer))
    });
    let mut program = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
    let runs = runs_of(answers);
    if runs.is_empty() {
        program.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    } else {
        range_tree(&runs, &mut program);
    }
    program
}

/// The whole default policy as one program (see the module's
/// documentation): the x32 guard, the architecture check (with
/// `foreign_arches`, a jump to the i386 section instead of the kill), the
/// [`shortcut`], the refusal sections from the highest errno down, the
/// allowlist, and with `foreign_arches` the i386 section.
fn merged_program(selected: &Selected, foreign_arches: bool) -> Result<BpfProgram, SeccompError> {
    let allowed = selected
        .allowed
        .iter()
        .map(|name| native_number(name, "default"))
        .collect::<Result<BTreeSet<u32>, _>>()?;
    let triage = triage(selected)?;
    // Of two errno answers the kernel keeps the one of the filter installed
    // last: the highest errno first. The calls refused outright never reach
    // the sections.
    let mut refusals = Vec::new();
    for (errno, rules) in selected.refusals.iter().rev() {
        let mut section_rules = Vec::new();
        for rule in rules {
            if triage
                .judged
                .contains(&native_number(&rule.syscall, "default")?)
            {
                section_rules.push(rule.clone());
            }
        }
        if !section_rules.is_empty() {
            refusals.push(refusal_program(*errno, &section_rules, "default")?);
        }
    }
    let mut program: BpfProgram = x32_guard().to_vec();
    program.push(stmt(BPF_LD_W_ABS, DATA_ARCH));
    program.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0));
    let not_native = program.len();
    program.push(stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    program.push(stmt(BPF_LD_W_ABS, DATA_NR));
    program.extend(shortcut(selected, &allowed, &triage));
    for section in &refusals {
        let body = without_arch_check(section)?;
        let end = program.len() + body.len();
        for instruction in body {
            if instruction.code != BPF_RET_K {
                program.push(instruction.clone());
                continue;
            }
            // A refusal section answers only with its errno; where it
            // would allow, the next section judges the call.
            match instruction.k & libc::SECCOMP_RET_ACTION_FULL {
                libc::SECCOMP_RET_ERRNO => program.push(instruction.clone()),
                libc::SECCOMP_RET_ALLOW => {
                    let next = program.len() + 1;
                    program.push(stmt(BPF_JA, (end - next) as u32));
                }
                _ => {
                    return Err(compile_error(
                        "default",
                        "unexpected answer in a refusal filter",
                    ))
                }
            }
        }
    }
    program.extend(judged_allowlist(selected, &allowed, &triage.judged));
    if foreign_arches {
        program[not_native] = stmt(BPF_JA, (program.len() - not_native - 1) as u32);
        program.extend(i386_program(selected)?);
    }
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(compile_error("default", "the merged filter is too long"));
    }
    Ok(program)
}

/// Numbers a leaf of the allowlist's search tree compares one by one.
#[cfg(test)]
const LEAF_SIZE: usize = 8;

/// The allowlist: seccompiler's architecture check (kill anything but
/// x86_64), then a binary search over the allowed numbers, each leaf a
/// short run of comparisons ending in `ENOSYS` (`unknown_errno`) or
/// `ALLOW`. A call costs about twenty instructions instead of a walk down
/// a list of every allowed call, and the kernel, which runs the filter
/// once per call number when it is installed (to cache the calls a filter
/// always allows), does a few thousand steps instead of hundreds of
/// thousands.
#[cfg(test)]
fn allowlist_program(allowed: &BTreeSet<u32>, unknown_errno: u32) -> BpfProgram {
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    let numbers: Vec<u32> = allowed.iter().copied().collect();
    search_tree(&numbers, unknown_errno, &mut program);
    program
}

/// Appends the search for the accumulator among the sorted `numbers`:
/// `ALLOW` when it is one of them, `unknown_errno` otherwise.
#[cfg(test)]
fn search_tree(numbers: &[u32], unknown_errno: u32, program: &mut BpfProgram) {
    if numbers.len() <= LEAF_SIZE {
        // Each comparison jumps to the final ALLOW over the ones after it
        // and the ENOSYS return.
        let count = numbers.len();
        for (at, nr) in numbers.iter().enumerate() {
            program.push(jump(BPF_JEQ_K, *nr, (count - at) as u8, 0));
        }
        program.push(ret_errno(unknown_errno));
        program.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        return;
    }
    let (low, high) = numbers.split_at(numbers.len() / 2);
    let mut below = Vec::new();
    search_tree(low, unknown_errno, &mut below);
    // At or above the pivot: the unconditional jump (32-bit offset) over
    // the lower half; below it: skip that jump.
    program.push(jump(BPF_JGE_K, high[0], 0, 1));
    program.push(stmt(BPF_JA, below.len() as u32));
    program.extend(below);
    search_tree(high, unknown_errno, program);
}

/// One refusal filter: the calls and arguments of `rules` get `errno`,
/// everything else passes. Built by seccompiler's back end, as its JSON
/// front end would (a call with a rule without conditions matches as a
/// whole unless it also has rules with conditions).
fn refusal_program(errno: u32, rules: &[Rule], origin: &str) -> Result<BpfProgram, SeccompError> {
    let mut chains: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for rule in rules {
        let chain = chains
            .entry(i64::from(native_number(&rule.syscall, origin)?))
            .or_default();
        if rule.args.is_empty() {
            continue;
        }
        let conditions = rule
            .args
            .iter()
            .map(|condition| {
                let width = match condition.width {
                    Width::Dword => SeccompCmpArgLen::Dword,
                    Width::Qword => SeccompCmpArgLen::Qword,
                };
                let op = match condition.op {
                    Op::Eq => SeccompCmpOp::Eq,
                    Op::Ne => SeccompCmpOp::Ne,
                    Op::MaskedEq(mask) => SeccompCmpOp::MaskedEq(mask),
                };
                SeccompCondition::new(condition.index, width, op, condition.val)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| compile_error(origin, err))?;
        chain.push(SeccompRule::new(conditions).map_err(|err| compile_error(origin, err))?);
    }
    let filter = SeccompFilter::new(
        chains,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        TargetArch::x86_64,
    )
    .map_err(|err| compile_error(origin, err))?;
    BpfProgram::try_from(filter).map_err(|err| compile_error(origin, err))
}

/// i386 calls that have no x86_64 name to come from, and what they stand
/// for on x86_64: old entry points libc for i386 still uses.
const I386_ALIASES: &[(&str, &str)] = &[
    ("lseek", "_llseek"),
    ("mmap", "mmap2"),
    ("newfstatat", "fstatat64"),
    ("select", "_newselect"),
    ("getrlimit", "ugetrlimit"),
    ("fadvise64", "fadvise64_64"),
    ("rt_sigreturn", "sigreturn"),
    ("rt_sigaction", "sigaction"),
    ("rt_sigprocmask", "sigprocmask"),
    ("rt_sigsuspend", "sigsuspend"),
    ("rt_sigpending", "sigpending"),
    ("wait4", "waitpid"),
    ("arch_prctl", "set_thread_area"),
    ("arch_prctl", "get_thread_area"),
    ("setpriority", "nice"),
];

/// Argument values that mean the same on the i386 entry as a native value
/// a refusal rule names, but have a number of their own there: (call,
/// argument index, native value, i386 value). fcntl64's 64-bit-offset lock
/// commands are the native `F_SETLK` and `F_SETLKW` (`F_GETLK64`, 12, only
/// reads).
const I386_ARG_EQUIVALENTS: &[(&str, u8, u64, u64)] = &[("fcntl", 1, 6, 13), ("fcntl", 1, 7, 14)];

/// `fcntl` commands the i386 entry may use at all (`include/uapi/linux/fcntl.h`
/// and `asm-generic/fcntl.h`): a command the kernel gains later, or one the
/// compat entry numbers differently, is refused with `EINVAL` (what the kernel
/// says of an unknown command) instead of slipping past the refusal rules,
/// which name native numbers. The refusal rules run first, so locks, leases
/// and dnotify stay refused while isolate's bit 4 is set.
const I386_FCNTL_COMMANDS: &[u32] = &[
    0, 1, 2, 3, 4, // F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL
    5, 6, 7, // F_GETLK, F_SETLK, F_SETLKW
    8, 9, 10, 11, // F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG
    12, 13, 14, // F_GETLK64, F_SETLK64, F_SETLKW64
    15, 16, 17, // F_SETOWN_EX, F_GETOWN_EX, F_GETOWNER_UIDS
    36, 37, 38, // F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW
    1024, 1025, 1026, // F_SETLEASE, F_GETLEASE, F_NOTIFY
    1027, 1028, 1030, // F_DUPFD_QUERY, F_CREATED_QUERY, F_DUPFD_CLOEXEC
    1031, 1032, 1033, 1034, // F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS
    1035, 1036, 1037, 1038, // the read/write hints
];

/// Calls whose argument rules the i386 filter turns into an allowlist of
/// values: (call, argument index, the values). The other calls with
/// argument rules mean the same numbers on both entries (`clone` flags,
/// `ioctl` commands, `personality`, `prctl` options and `socket` families;
/// the last three are allowlists already), and the multiplexers whose
/// arguments a filter could not see (`socketcall`, `ipc`) are not on the
/// i386 list at all.
const I386_ARG_ALLOWLISTS: &[(&str, u8, &[u32])] = &[("fcntl", 1, I386_FCNTL_COMMANDS)];

/// `rule` and its copies with the i386 numbers of its argument values
/// ([`I386_ARG_EQUIVALENTS`]).
fn i386_variants(rule: &Rule) -> Vec<Rule> {
    let mut variants = vec![rule.clone()];
    for (call, index, native, i386) in I386_ARG_EQUIVALENTS {
        if rule.syscall != *call {
            continue;
        }
        for (at, condition) in rule.args.iter().enumerate() {
            if condition.index == *index
                && matches!(condition.op, Op::Eq)
                && condition.val == *native
            {
                let mut variant = rule.clone();
                variant.args[at].val = *i386;
                variants.push(variant);
            }
        }
    }
    variants
}

/// The i386 numbers standing for the x86_64 call `name`: the same name,
/// its 64-bit-offset, 32-bit-id and 64-bit-time variants, and the aliases.
fn i386_numbers(name: &str) -> Vec<u32> {
    let mut names = vec![
        name.to_string(),
        format!("{name}64"),
        format!("{name}32"),
        format!("{name}_time64"),
    ];
    names.extend(
        I386_ALIASES
            .iter()
            .filter(|(native, _)| *native == name)
            .map(|(_, alias)| alias.to_string()),
    );
    I386_SYSCALLS
        .iter()
        .filter(|(i386, _)| names.iter().any(|n| n == i386))
        .map(|(_, nr)| *nr)
        .collect()
}

/// The filter of the i386 entry: x86_64 calls pass (the other filters judge
/// them), i386 calls are judged by the selected groups, anything else is
/// killed. Arguments are 32 bits wide there, so conditions compare the low
/// word.
fn i386_program(selected: &Selected) -> Result<BpfProgram, SeccompError> {
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 1),
        stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW),
        jump(BPF_JEQ_K, AUDIT_ARCH_I386, 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ];
    // Refusals first, so an allowed call's refused arguments are caught.
    for (errno, rules) in &selected.refusals {
        for rule in rules.iter().flat_map(i386_variants) {
            for nr in i386_numbers(&rule.syscall) {
                let mut body = Vec::new();
                for condition in &rule.args {
                    // A condition on the high word of a 32-bit argument can
                    // only compare with zero.
                    let value = condition.val as u32;
                    body.push(stmt(
                        BPF_LD_W_ABS,
                        DATA_ARGS + 8 * u32::from(condition.index),
                    ));
                    match condition.op {
                        Op::Eq => body.push(jump(BPF_JEQ_K, value, 0, u8::MAX)),
                        Op::Ne => body.push(jump(BPF_JEQ_K, value, u8::MAX, 0)),
                        Op::MaskedEq(mask) => {
                            body.push(stmt(BPF_AND_K, mask as u32));
                            body.push(jump(BPF_JEQ_K, value & mask as u32, 0, u8::MAX));
                        }
                    }
                }
                body.push(ret_errno(*errno));
                // u8::MAX marks "to the end of this rule".
                let len = body.len();
                if len > usize::from(u8::MAX) {
                    return Err(compile_error(
                        "default (i386)",
                        format!("rule for {} is too long", rule.syscall),
                    ));
                }
                for (at, instruction) in body.iter_mut().enumerate() {
                    let to_end = (len - at - 1) as u8;
                    if instruction.jt == u8::MAX {
                        instruction.jt = to_end;
                    }
                    if instruction.jf == u8::MAX {
                        instruction.jf = to_end;
                    }
                }
                program.push(stmt(BPF_LD_W_ABS, DATA_NR));
                program.push(jump(BPF_JEQ_K, nr, 0, len as u8));
                program.extend(body);
            }
        }
    }
    // Calls allowed only with listed argument values.
    for (call, index, values) in I386_ARG_ALLOWLISTS {
        if !selected.allowed.contains(*call) {
            continue;
        }
        let count = values.len();
        for nr in i386_numbers(call) {
            program.push(stmt(BPF_LD_W_ABS, DATA_NR));
            program.push(jump(BPF_JEQ_K, nr, 0, (count + 3) as u8));
            program.push(stmt(BPF_LD_W_ABS, DATA_ARGS + 8 * u32::from(*index)));
            for (at, value) in values.iter().enumerate() {
                // A match jumps past the other values and the refusal.
                program.push(jump(BPF_JEQ_K, *value, (count - at) as u8, 0));
            }
            program.push(ret_errno(libc::EINVAL as u32));
            program.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
        }
    }
    program.push(stmt(BPF_LD_W_ABS, DATA_NR));
    let numbers: BTreeSet<u32> = selected
        .allowed
        .iter()
        .flat_map(|name| i386_numbers(name))
        .collect();
    for nr in numbers {
        program.push(jump(BPF_JEQ_K, nr, 0, 1));
        program.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    }
    program.push(ret_errno(selected.unknown_errno));
    if program.len() > 4096 {
        return Err(compile_error(
            "default (i386)",
            "the i386 filter is too long",
        ));
    }
    Ok(program)
}

/// Makes a seccompiler program let foreign architectures through (the i386
/// filter judges them): its first three instructions load the arch and
/// kill on a mismatch.
fn pass_foreign_arches(program: &mut BpfProgram) -> Result<(), SeccompError> {
    let expected = program.len() > 3
        && program[0].code == BPF_LD_W_ABS
        && program[0].k == DATA_ARCH
        && program[1].k == AUDIT_ARCH_X86_64
        && program[2].code == BPF_RET_K
        && program[2].k == libc::SECCOMP_RET_KILL_PROCESS;
    if !expected {
        return Err(compile_error(
            "default",
            "unexpected architecture check in a compiled filter",
        ));
    }
    program[2].k = libc::SECCOMP_RET_ALLOW;
    Ok(())
}

/// The default policy's programs compiled in this process, by options:
/// parsing and compiling it is about 0.13 ms, paid once per process (and
/// by none of the workers a process forks after, such as the isolate
/// service's spare agents).
static DEFAULT_PROGRAMS: std::sync::Mutex<Vec<(PolicyOptions, BpfProgram)>> =
    std::sync::Mutex::new(Vec::new());

/// The default policy's program for a run with `options`.
fn default_program(options: &PolicyOptions) -> Result<BpfProgram, SeccompError> {
    let known = |programs: &[(PolicyOptions, BpfProgram)]| {
        programs
            .iter()
            .find(|(compiled_for, _)| compiled_for == options)
            .map(|(_, program)| program.clone())
    };
    let compiled = DEFAULT_PROGRAMS
        .lock()
        .ok()
        .and_then(|programs| known(&programs));
    if let Some(program) = compiled {
        return Ok(program);
    }
    let file = parse(DEFAULT_POLICY, "default")?;
    let selected = select(&file, options);
    let foreign_arches = options.syscall_flags & syscall_flags::LEGACY_ARCH == 0;
    let program = merged_program(&selected, foreign_arches)?;
    if let Ok(mut programs) = DEFAULT_PROGRAMS.lock() {
        if known(&programs).is_none() {
            programs.push((*options, program.clone()));
        }
    }
    Ok(program)
}

impl SeccompPolicy {
    /// The default policy with the default [`PolicyOptions`], extended by
    /// the policy file `extension` if given.
    #[cfg(test)]
    pub(crate) fn new(extension: Option<&Path>) -> Result<Self, SeccompError> {
        Self::with_options(extension, &PolicyOptions::default())
    }

    /// The default policy for a run with `options`, extended by the policy
    /// file `extension` (seccompiler's JSON format) if given.
    pub(crate) fn with_options(
        extension: Option<&Path>,
        options: &PolicyOptions,
    ) -> Result<Self, SeccompError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(compile_error("default", "only x86_64 is supported"));
        }
        let foreign_arches = options.syscall_flags & syscall_flags::LEGACY_ARCH == 0;
        let mut programs = vec![default_program(options)?];
        if let Some(path) = extension {
            let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let mut extra = compile_json(&text, &path.display().to_string())?;
            if foreign_arches {
                for program in &mut extra {
                    pass_foreign_arches(program)?;
                }
            }
            programs.extend(extra);
        }
        Ok(Self {
            programs: programs.into(),
        })
    }

    /// Child side: installs every filter. `no_new_privs` must already be
    /// set. Returns the errno of a failed installation.
    ///
    /// # Safety
    /// Only async-signal-safe calls; meant for the time between fork and exec.
    pub(crate) unsafe fn install(&self) -> Result<(), i32> {
        for program in self.programs.iter() {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            // SAFETY: `prog` points at a live, well-formed BPF program for
            // the duration of the call; the kernel copies it.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                )
            };
            if ret != 0 {
                return Err(crate::sys::errno());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The programs kept per process are each their own options': asked
    /// for in turn, alternately, every one is what compiling it afresh
    /// gives.
    #[test]
    fn kept_default_programs_are_their_options() {
        let choices = [
            PolicyOptions::default(),
            PolicyOptions {
                share_net: true,
                ..PolicyOptions::default()
            },
            PolicyOptions {
                syscall_flags: 0,
                ..PolicyOptions::default()
            },
        ];
        let fresh = |options: &PolicyOptions| {
            let file = parse(DEFAULT_POLICY, "default").unwrap();
            let foreign_arches = options.syscall_flags & syscall_flags::LEGACY_ARCH == 0;
            merged_program(&select(&file, options), foreign_arches).unwrap()
        };
        assert_ne!(fresh(&choices[0]), fresh(&choices[1]));
        assert_ne!(fresh(&choices[0]), fresh(&choices[2]));
        for _ in 0..2 {
            for options in &choices {
                assert_eq!(default_program(options).unwrap(), fresh(options));
            }
        }
    }

    fn selected(options: &PolicyOptions) -> Selected<'static> {
        static FILE: std::sync::OnceLock<PolicyFile> = std::sync::OnceLock::new();
        select(
            FILE.get_or_init(|| parse(DEFAULT_POLICY, "default").unwrap()),
            options,
        )
    }

    #[test]
    fn default_policy_compiles_with_the_x32_guard_first() {
        let policy = SeccompPolicy::new(None).unwrap();
        // The allowlist and the EPERM, EINVAL and EAFNOSUPPORT refusals,
        // merged.
        assert_eq!(policy.programs.len(), 1);
        assert_eq!(policy.programs[0][1].k, X32_SYSCALL_BIT);
        assert_eq!(policy.programs[0][2].k, libc::SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn every_combination_of_options_compiles() {
        for flags in 0..32 {
            for share_net in [false, true] {
                for memory_without_cgroup in [false, true] {
                    let options = PolicyOptions {
                        syscall_flags: flags,
                        share_net,
                        memory_without_cgroup,
                        ipc_unsized: memory_without_cgroup,
                    };
                    SeccompPolicy::with_options(None, &options)
                        .unwrap_or_else(|err| panic!("{options:?}: {err}"));
                }
            }
        }
    }

    #[test]
    fn the_allowlist_leaves_out_what_programs_do_not_need() {
        let all = selected(&PolicyOptions::default());
        for needed in [
            "read",
            "mmap",
            "futex",
            "clone",
            "rseq",
            "getrandom",
            "epoll_wait",
            "socket",
        ] {
            assert!(all.allowed.contains(needed), "{needed}");
        }
        for refused in [
            "clone3",
            "keyctl",
            "flock",
            "io_uring_setup",
            "io_setup",
            "ptrace",
            "mount",
            "unshare",
            "modify_ldt",
            "fanotify_init",
            "inotify_init1",
            "bpf",
        ] {
            assert!(!all.allowed.contains(refused), "{refused}");
        }
        let none = selected(&PolicyOptions {
            syscall_flags: 0,
            ..PolicyOptions::default()
        });
        for switched in ["keyctl", "add_key", "flock", "io_uring_setup"] {
            assert!(none.allowed.contains(switched), "{switched}");
        }
        assert!(!none.refusals[&1]
            .iter()
            .any(|rule| rule.syscall == "keyctl"));
    }

    #[test]
    fn socket_families_follow_share_net_and_the_vsock_flag() {
        let families = |options: &PolicyOptions| -> Vec<u64> {
            let selected = selected(options);
            let rules: Vec<_> = selected.refusals[&97]
                .iter()
                .filter(|rule| rule.syscall == "socket")
                .collect();
            assert_eq!(rules.len(), 1, "{options:?}");
            rules[0].args.iter().map(|c| c.val).collect()
        };
        let mut options = PolicyOptions::default();
        assert_eq!(families(&options), [1]);
        options.share_net = true;
        assert_eq!(families(&options), [1, 2, 10]);
        options.syscall_flags &= !syscall_flags::VSOCK;
        assert_eq!(families(&options), [1, 2, 10, 40]);
    }

    /// The x86_64 filters as seccompiler's JSON front end compiles them
    /// (how isobox built them before it compiled the numbers itself).
    fn json_programs(selected: &Selected) -> Vec<BpfProgram> {
        let allow_rules: Vec<Rule> = selected
            .allowed
            .iter()
            .map(|name| Rule {
                syscall: name.to_string(),
                args: Vec::new(),
                comment: None,
            })
            .collect();
        let mut programs = compile_json(
            &filter_json(
                "allowlist",
                serde_json::json!({ "errno": selected.unknown_errno }),
                serde_json::json!("allow"),
                &allow_rules,
            ),
            "json",
        )
        .unwrap();
        for (errno, rules) in &selected.refusals {
            programs.extend(
                compile_json(
                    &filter_json(
                        &format!("refuse_{errno}"),
                        serde_json::json!("allow"),
                        serde_json::json!({ "errno": errno }),
                        rules,
                    ),
                    "json",
                )
                .unwrap(),
            );
        }
        programs
    }

    /// Runs a classic BPF program of the kinds built here on one call.
    fn run_filter(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut accumulator = 0u32;
        let mut pc = 0usize;
        loop {
            let instruction = &program[pc];
            pc += 1;
            match instruction.code {
                BPF_LD_W_ABS => {
                    accumulator = match instruction.k {
                        DATA_NR => nr,
                        DATA_ARCH => arch,
                        offset => {
                            let index = ((offset - DATA_ARGS) / 8) as usize;
                            let high = (offset - DATA_ARGS) % 8 == 4;
                            (args[index] >> if high { 32 } else { 0 }) as u32
                        }
                    }
                }
                BPF_JA => pc += instruction.k as usize,
                BPF_JEQ_K | BPF_JGE_K | 0x45 | 0x25 => {
                    let taken = match instruction.code {
                        BPF_JEQ_K => accumulator == instruction.k,
                        BPF_JGE_K => accumulator >= instruction.k,
                        0x25 => accumulator > instruction.k,
                        _ => accumulator & instruction.k != 0,
                    };
                    pc += usize::from(if taken {
                        instruction.jt
                    } else {
                        instruction.jf
                    });
                }
                BPF_AND_K => accumulator &= instruction.k,
                BPF_RET_K => return instruction.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    #[test]
    fn the_allowlist_tree_answers_as_the_list_did() {
        for options in [
            PolicyOptions::default(),
            PolicyOptions {
                syscall_flags: 0,
                share_net: true,
                memory_without_cgroup: true,
                ipc_unsized: true,
            },
        ] {
            let selected = selected(&options);
            let tree = &native_programs(&selected, "default").unwrap()[0];
            let list = &json_programs(&selected)[0];
            assert!(tree.len() * 2 < list.len(), "{} {}", tree.len(), list.len());
            for nr in (0..2048).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1, u32::MAX]) {
                for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0] {
                    assert_eq!(
                        run_filter(tree, nr, arch, [0; 6]),
                        run_filter(list, nr, arch, [0; 6]),
                        "call {nr} arch {arch:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn refusal_filters_are_what_seccompilers_json_front_end_made() {
        for flags in 0..32 {
            for share_net in [false, true] {
                for memory_without_cgroup in [false, true] {
                    let selected = selected(&PolicyOptions {
                        syscall_flags: flags,
                        share_net,
                        memory_without_cgroup,
                        ipc_unsized: memory_without_cgroup,
                    });
                    let ours = native_programs(&selected, "default").unwrap();
                    let json = json_programs(&selected);
                    assert_eq!(ours.len(), json.len());
                    for (ours, json) in ours.iter().zip(&json).skip(1) {
                        let same = ours.len() == json.len()
                            && ours.iter().zip(json).all(|(a, b)| {
                                (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k)
                            });
                        assert!(same, "flags {flags} share_net {share_net}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_name_has_seccompilers_number() {
        for (name, nr) in seccomp_x86_64::X86_64_SYSCALLS {
            let json = format!(
                r#"{{"f":{{"mismatch_action":"allow","match_action":"trap","filter":[{{"syscall":"{name}"}}]}}}}"#
            );
            let program = compile_json(&json, "test").unwrap().remove(0);
            // The architecture check, the load of the number, then the
            // comparison with it.
            assert_eq!(program[4].k, *nr, "{name}");
            assert_eq!(seccomp_x86_64::number(name), Some(*nr), "{name}");
        }
        assert_eq!(seccomp_x86_64::number("no_such_call"), None);
    }

    #[test]
    fn i386_names_map_to_their_numbers() {
        assert_eq!(i386_numbers("clone"), [120]);
        assert_eq!(i386_numbers("fcntl"), [55, 221]);
        let mut lseek = i386_numbers("lseek");
        lseek.sort_unstable();
        assert_eq!(lseek, [19, 140]);
        assert!(i386_numbers("arch_prctl").contains(&243));
        assert!(i386_numbers("newfstatat").contains(&300));
        assert_eq!(i386_numbers("getuid"), [24, 199]);
    }

    #[test]
    fn the_i386_filter_exists_only_when_foreign_arches_are_allowed() {
        let strict = SeccompPolicy::new(None).unwrap();
        let loose = SeccompPolicy::with_options(
            None,
            &PolicyOptions {
                syscall_flags: syscall_flags::ALL & !syscall_flags::LEGACY_ARCH,
                ..PolicyOptions::default()
            },
        )
        .unwrap();
        assert_eq!(loose.programs.len(), strict.programs.len());
        // After the x32 guard and the architecture comparison, the i386
        // entry is killed or jumps to its own section.
        assert_eq!(strict.programs[0][5].code, BPF_RET_K);
        assert_eq!(strict.programs[0][5].k, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(loose.programs[0][5].code, BPF_JA);
        assert!(loose.programs[0].len() > strict.programs[0].len());
    }

    #[test]
    fn i386_fcntl_refuses_the_compat_lock_commands_and_unknown_ones() {
        let with = |flags: u32| {
            let options = PolicyOptions {
                syscall_flags: flags & !syscall_flags::LEGACY_ARCH,
                ..PolicyOptions::default()
            };
            i386_program(&selected(&options)).unwrap()
        };
        // Whether some refusal compares fcntl's command with `value`.
        let refused = |program: &BpfProgram, value: u32| {
            program.windows(3).any(|w| {
                w[0].k == DATA_ARGS + 8
                    && w[1].code == BPF_JEQ_K
                    && w[1].k == value
                    && w[2].code == BPF_RET_K
                    && w[2].k == libc::SECCOMP_RET_ERRNO | libc::EPERM as u32
            })
        };
        let locked = with(syscall_flags::ALL);
        for command in [6, 7, 13, 14, 37, 38, 1024, 1026] {
            assert!(refused(&locked, command), "command {command}");
        }
        assert!(!refused(&locked, 12), "F_GETLK64 only reads");
        let unlocked = with(syscall_flags::ALL & !syscall_flags::FCNTL);
        assert!(!refused(&unlocked, 13));
        // Both fcntl entries end in the allowlist of commands.
        let einval = libc::SECCOMP_RET_ERRNO | libc::EINVAL as u32;
        let allowlists = locked
            .windows(2)
            .filter(|w| w[0].k == 1038 && w[1].k == einval)
            .count();
        assert_eq!(allowlists, 2);
        // The multiplexers hide their real call in an argument.
        let all = selected(&PolicyOptions::default());
        let numbers: BTreeSet<u32> = all.allowed.iter().flat_map(|n| i386_numbers(n)).collect();
        assert!(
            !numbers.contains(&102) && !numbers.contains(&117),
            "socketcall, ipc"
        );
    }

    /// The filters as isobox installed them before they were merged: the
    /// i386 filter (when foreign architectures pass), the allowlist, one
    /// filter per refusal errno, the x32 guard in front of the first.
    fn separate_programs(selected: &Selected, foreign_arches: bool) -> Vec<BpfProgram> {
        let mut programs = native_programs(selected, "default").unwrap();
        if foreign_arches {
            for program in &mut programs {
                pass_foreign_arches(program).unwrap();
            }
            programs.insert(0, i386_program(selected).unwrap());
        }
        programs[0].splice(0..0, x32_guard());
        programs
    }

    /// What the kernel answers for a call judged by every filter of
    /// `programs`, installed in that order: the lowest action (as a signed
    /// number, so a kill beats an errno, which beats an allow), and among
    /// equal actions the answer of the filter installed last.
    fn kernel_answer(programs: &[BpfProgram], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let action = |ret: u32| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32;
        let mut answers = programs
            .iter()
            .rev()
            .map(|program| run_filter(program, nr, arch, args));
        let mut best = answers.next().unwrap();
        for answer in answers {
            if action(answer) < action(best) {
                best = answer;
            }
        }
        best
    }

    #[test]
    fn the_merged_program_answers_as_the_separate_filters_did() {
        let arches = [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0];
        for flags in 0..32 {
            for share_net in [false, true] {
                for memory_without_cgroup in [false, true] {
                    let options = PolicyOptions {
                        syscall_flags: flags,
                        share_net,
                        memory_without_cgroup,
                        ipc_unsized: memory_without_cgroup,
                    };
                    let selected = selected(&options);
                    let foreign = flags & syscall_flags::LEGACY_ARCH == 0;
                    let separate = separate_programs(&selected, foreign);
                    let merged = [merged_program(&selected, foreign).unwrap()];
                    let same = |nr: u32, arch: u32, args: [u64; 6]| {
                        assert_eq!(
                            kernel_answer(&merged, nr, arch, args),
                            kernel_answer(&separate, nr, arch, args),
                            "{options:?}: call {nr} arch {arch:#x} args {args:?}"
                        );
                    };
                    for nr in (0..480).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1, u32::MAX]) {
                        for arch in arches {
                            same(nr, arch, [0; 6]);
                        }
                    }
                    // Every argument value a refusal compares with, alone
                    // and masked, on every number the call has.
                    for rule in selected.refusals.values().flatten() {
                        let mut numbers = i386_numbers(&rule.syscall);
                        numbers.push(native_number(&rule.syscall, "test").unwrap());
                        for condition in &rule.args {
                            let mask = match condition.op {
                                Op::MaskedEq(mask) => mask,
                                _ => u64::MAX,
                            };
                            for value in [
                                condition.val,
                                condition.val & mask,
                                condition.val | !mask,
                                condition.val ^ 1,
                                condition.val.wrapping_add(1) << 32,
                            ] {
                                let mut args = [0; 6];
                                args[usize::from(condition.index)] = value;
                                for &nr in &numbers {
                                    for arch in arches {
                                        same(nr, arch, args);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn extension_file_adds_filters_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("extra.json");
        std::fs::write(
            &good,
            r#"{"no_chmod":{"mismatch_action":"allow","match_action":{"errno":1},"filter":[{"syscall":"chmod"}]}}"#,
        )
        .unwrap();
        assert_eq!(SeccompPolicy::new(Some(&good)).unwrap().programs.len(), 2);

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"x":{"mismatch_action":"allow","match_action":"allow","filter":[{"syscall":"no_such_call"}]}}"#).unwrap();
        let err = SeccompPolicy::new(Some(&bad)).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        let missing = SeccompPolicy::new(Some(Path::new("/nonexistent.json"))).unwrap_err();
        assert!(matches!(missing, SeccompError::Read { .. }));
    }
}
