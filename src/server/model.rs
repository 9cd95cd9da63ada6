//! go-judge's REST model (`cmd/go-judge/model/model.go`), field for field:
//! what a client sends to `POST /run` and what it reads back.
//!
//! Times are nanoseconds and sizes bytes, as in go-judge. A `null` where go
//! accepts one (its zero value) is accepted here too.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Reads `null` as the type's default, as Go's decoder does for slices and
/// maps.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One file of a command: an input (`content`, `src`, `fileId`), a
/// collector (`name` and `max`) or, in `copyIn`, a `symlink`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CmdFile {
    pub src: Option<String>,
    pub content: Option<String>,
    #[serde(rename = "fileId")]
    pub file_id: Option<String>,
    pub name: Option<String>,
    pub max: Option<i64>,
    pub symlink: Option<String>,
    pub stream_in: bool,
    pub stream_out: bool,
    pub pipe: bool,
}

/// One command and its limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cmd {
    #[serde(deserialize_with = "null_default")]
    pub args: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub files: Vec<Option<CmdFile>>,
    pub cpu_limit: u64,
    pub real_cpu_limit: u64,
    pub clock_limit: u64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub proc_limit: u64,
    pub cpu_rate_limit: u64,
    #[serde(deserialize_with = "null_default")]
    pub cpu_set_limit: String,
    #[serde(deserialize_with = "null_default")]
    pub copy_in: BTreeMap<String, CmdFile>,
    #[serde(deserialize_with = "null_default")]
    pub copy_out: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub copy_out_cached: Vec<String>,
    pub copy_out_max: u64,
    #[serde(deserialize_with = "null_default")]
    pub copy_out_dir: String,
    pub copy_out_truncate: bool,
    pub tty: bool,
    pub strict_memory_limit: bool,
    pub data_segment_limit: bool,
    pub address_space_limit: bool,
}

/// One end of a pipe: descriptor `fd` of command `index`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct PipeIndex {
    pub index: i64,
    pub fd: i64,
}

/// A pipe from `in` (the writer) to `out` (the reader).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PipeMap {
    #[serde(rename = "in")]
    pub input: PipeIndex,
    #[serde(rename = "out")]
    pub output: PipeIndex,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub max: i64,
    pub proxy: bool,
    pub disable_zero_copy: bool,
}

/// The body of `POST /run`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Request {
    #[serde(deserialize_with = "null_default")]
    pub request_id: String,
    #[serde(deserialize_with = "null_default")]
    pub cmd: Vec<Cmd>,
    #[serde(deserialize_with = "null_default")]
    pub pipe_mapping: Vec<PipeMap>,
}

/// go-judge's verdicts, spelled as its clients compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    MemoryLimitExceeded,
    TimeLimitExceeded,
    OutputLimitExceeded,
    FileError,
    NonzeroExitStatus,
    Signalled,
    DangerousSyscall,
    InternalError,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::MemoryLimitExceeded => "Memory Limit Exceeded",
            Self::TimeLimitExceeded => "Time Limit Exceeded",
            Self::OutputLimitExceeded => "Output Limit Exceeded",
            Self::FileError => "File Error",
            Self::NonzeroExitStatus => "Nonzero Exit Status",
            Self::Signalled => "Signalled",
            Self::DangerousSyscall => "Dangerous Syscall",
            Self::InternalError => "Internal Error",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Where a file operation failed (go-judge's `FileErrorType` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FileErrorType {
    CopyInOpenFile,
    CopyInCreateDir,
    CopyInCreateFile,
    CopyInCopyContent,
    CopyOutOpen,
    CopyOutNotRegularFile,
    CopyOutSizeExceeded,
    CopyOutCreateFile,
    CopyOutCopyContent,
    CollectSizeExceeded,
    Symlink,
}

/// A failed file operation.
#[derive(Debug, Clone, Serialize)]
pub struct FileError {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FileErrorType,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The result of one command.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CmdResult {
    pub status: Verdict,
    pub exit_status: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// CPU time, ns.
    pub time: u64,
    /// Peak memory, bytes.
    pub memory: u64,
    /// Wall-clock time, ns.
    pub run_time: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub proc_peak: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub file_ids: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_error: Vec<FileError>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl CmdResult {
    /// A result for a command that never ran.
    pub fn failed(status: Verdict, error: impl Into<String>) -> Self {
        Self {
            status,
            exit_status: 0,
            error: error.into(),
            time: 0,
            memory: 0,
            run_time: 0,
            proc_peak: 0,
            files: BTreeMap::new(),
            file_ids: BTreeMap::new(),
            file_error: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_empty() {
        let request: Request = serde_json::from_str(
            r#"{"cmd":[{"args":["/bin/true"],"env":null,"files":[null,{"name":"stdout","max":10}],
                "copyIn":null,"copyOut":null,"cpuLimit":1000}],"pipeMapping":null}"#,
        )
        .unwrap();
        let cmd = &request.cmd[0];
        assert!(cmd.env.is_empty() && cmd.copy_in.is_empty() && cmd.copy_out.is_empty());
        assert!(cmd.files[0].is_none());
        assert_eq!(cmd.files[1].as_ref().unwrap().max, Some(10));
        assert_eq!(cmd.cpu_limit, 1000);
    }

    #[test]
    fn results_use_go_judge_names() {
        let mut result = CmdResult::failed(Verdict::FileError, "x");
        result.file_error.push(FileError {
            name: "a".into(),
            kind: FileErrorType::CopyOutOpen,
            message: String::new(),
        });
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["status"], "File Error");
        let names: Vec<&str> = [Verdict::NonzeroExitStatus, Verdict::Signalled]
            .iter()
            .map(|verdict| verdict.as_str())
            .collect();
        assert_eq!(names, ["Nonzero Exit Status", "Signalled"]);
        assert_eq!(json["exitStatus"], 0);
        assert_eq!(json["runTime"], 0);
        assert_eq!(json["fileError"][0]["type"], "CopyOutOpen");
        assert!(json.get("files").is_none());
    }
}
