//! The file store: files uploaded with `POST /file` or kept by
//! `copyOutCached`, named by unguessable ids, on disk in a directory only
//! root can read, bounded in size per file and in total.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("file larger than the store's limit of {0} bytes")]
    FileTooLarge(u64),
    #[error("the file store is full ({0} bytes)")]
    Full(u64),
    #[error("file store: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug)]
struct Entry {
    name: String,
    size: u64,
    added: std::time::Instant,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
}

/// The store (see the module documentation).
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    max_file: u64,
    max_total: u64,
    index: Mutex<Index>,
}

/// 128 random bits from the kernel, as 32 hex digits: an id is a
/// capability, so it must not be guessable from earlier ones.
fn new_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `id` has the shape of one of ours (and so is safe as a file name).
fn well_formed(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl FileStore {
    /// Opens the store in `dir` (created 0700). The store starts empty:
    /// files left by an earlier server are removed.
    pub fn new(dir: &Path, max_file: u64, max_total: u64) -> std::io::Result<Self> {
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() && well_formed(&entry.file_name().to_string_lossy()) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            max_file,
            max_total,
            index: Mutex::new(Index::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reserves `size` bytes, or says why not.
    fn reserve(&self, size: u64) -> Result<(), StoreError> {
        if size > self.max_file {
            return Err(StoreError::FileTooLarge(self.max_file));
        }
        let mut index = self.lock();
        if index.total + size > self.max_total {
            return Err(StoreError::Full(self.max_total));
        }
        index.total += size;
        Ok(())
    }

    fn release(&self, size: u64) {
        let mut index = self.lock();
        index.total = index.total.saturating_sub(size);
    }

    /// Stores `data` under a new id.
    pub fn add(&self, name: &str, data: &[u8]) -> Result<String, StoreError> {
        let size = data.len() as u64;
        self.reserve(size)?;
        let stored = (|| {
            let id = new_id()?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(self.dir.join(&id))?;
            file.write_all(data)?;
            Ok::<_, std::io::Error>(id)
        })();
        match stored {
            Ok(id) => {
                self.lock().entries.insert(
                    id.clone(),
                    Entry {
                        name: name.to_string(),
                        size,
                        added: std::time::Instant::now(),
                    },
                );
                Ok(id)
            }
            Err(err) => {
                self.release(size);
                Err(err.into())
            }
        }
    }

    /// Starts an upload of unknown size; chunks are counted against the
    /// limits as they come.
    pub fn upload(&self, name: &str) -> Result<Upload<'_>, StoreError> {
        let id = new_id()?;
        let path = self.dir.join(&id);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Upload {
            store: self,
            id,
            name: name.to_string(),
            path,
            file: Some(file),
            size: 0,
        })
    }

    /// The name and an open file of `id`.
    pub fn open(&self, id: &str) -> Option<(String, File)> {
        if !well_formed(id) {
            return None;
        }
        let name = self.lock().entries.get(id)?.name.clone();
        File::open(self.dir.join(id)).ok().map(|file| (name, file))
    }

    /// Removes `id`; false when there is no such file.
    pub fn remove(&self, id: &str) -> bool {
        if !well_formed(id) {
            return false;
        }
        let mut index = self.lock();
        let Some(entry) = index.entries.remove(id) else {
            return false;
        };
        index.total = index.total.saturating_sub(entry.size);
        drop(index);
        let _ = fs::remove_file(self.dir.join(id));
        true
    }

    /// Every id with its name.
    pub fn list(&self) -> BTreeMap<String, String> {
        self.lock()
            .entries
            .iter()
            .map(|(id, entry)| (id.clone(), entry.name.clone()))
            .collect()
    }

    /// Files and bytes stored.
    pub fn usage(&self) -> (usize, u64) {
        let index = self.lock();
        (index.entries.len(), index.total)
    }

    /// Removes the files stored longer than `ttl` ago; how many.
    pub fn expire(&self, ttl: std::time::Duration) -> usize {
        let old: Vec<String> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, entry)| entry.added.elapsed() > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        old.iter().filter(|id| self.remove(id)).count()
    }

    /// Removes every file (at shutdown).
    pub fn clear(&self) {
        let ids: Vec<String> = self.lock().entries.keys().cloned().collect();
        for id in ids {
            self.remove(&id);
        }
    }
}

/// A file being uploaded; dropped without [`Upload::finish`] it is removed.
#[derive(Debug)]
pub struct Upload<'a> {
    store: &'a FileStore,
    id: String,
    name: String,
    path: PathBuf,
    file: Option<File>,
    size: u64,
}

impl Upload<'_> {
    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let size = chunk.len() as u64;
        if self.size + size > self.store.max_file {
            return Err(StoreError::FileTooLarge(self.store.max_file));
        }
        self.store.reserve(size)?;
        self.size += size;
        if let Some(file) = &mut self.file {
            file.write_all(chunk)?;
        }
        Ok(())
    }

    /// Makes the file visible under its id.
    pub fn finish(mut self) -> String {
        self.file = None;
        self.store.lock().entries.insert(
            self.id.clone(),
            Entry {
                name: std::mem::take(&mut self.name),
                size: self.size,
                added: std::time::Instant::now(),
            },
        );
        // Committed: nothing for Drop to undo.
        self.size = 0;
        std::mem::take(&mut self.id)
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if !self.id.is_empty() {
            self.store.release(self.size);
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), 10, 15).unwrap();
        let a = store.add("a", b"hello").unwrap();
        let b = store.add("b", b"world").unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a));
        assert!(matches!(
            store.add("c", b"0123456789a"),
            Err(StoreError::FileTooLarge(10))
        ));
        assert!(matches!(
            store.add("c", b"0123456"),
            Err(StoreError::Full(15))
        ));
        assert!(store.open("../etc/passwd").is_none());
        assert!(store.remove(&a));
        assert!(!store.remove(&a));
        let mut upload = store.upload("u").unwrap();
        upload.write(b"0123").unwrap();
        let id = upload.finish();
        let (name, mut file) = store.open(&id).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!((name.as_str(), text.as_str()), ("u", "0123"));
        assert_eq!(store.usage(), (2, 9));
        let mut aborted = store.upload("v").unwrap();
        aborted.write(b"01").unwrap();
        drop(aborted);
        assert_eq!(store.usage(), (2, 9));
        assert_eq!(store.expire(std::time::Duration::from_secs(60)), 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(store.expire(std::time::Duration::from_millis(10)), 2);
        assert_eq!(store.usage(), (0, 0));
    }
}
