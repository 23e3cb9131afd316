//! Walking a repository: `.gitignore`/`.ignore` rules, hidden files and `.git` skipped,
//! symlinks not followed, and each file classified as indexable or skipped with a reason.

use super::language::LanguageMap;
use super::shard::Shard;
use super::summary::SkipReason;
use crate::store::content_hash;
use ignore::WalkBuilder;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Folders of vendored or installed third-party code, skipped by default.
const VENDORED_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    "third_party",
    "third-party",
    "bower_components",
    "site-packages",
    ".venv",
    "venv",
    "Pods",
];

/// Lock files: machine-written, large, and useless to search.
const LOCK_FILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "flake.lock",
    "bun.lockb",
    "mix.lock",
    "Package.resolved",
];

/// What the walk skips and how.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Files larger than this are skipped.
    pub max_file_bytes: u64,
    /// Files with a line longer than this are taken as generated or minified.
    pub max_line_bytes: usize,
    /// Skip folders of vendored dependencies.
    pub skip_vendored: bool,
    /// Skip lock files.
    pub skip_lock_files: bool,
    /// Walk hidden files and folders too (`.git` is always skipped).
    pub include_hidden: bool,
    /// Follow symbolic links.
    pub follow_symlinks: bool,
    /// File names and extensions that are indexed.
    pub languages: LanguageMap,
    /// Limit the walk to these files and folders, relative to the root and
    /// `/`-separated (empty: the whole root). Ignore rules still apply from the root down.
    pub only: Vec<String>,
    /// Limit the walk to one shard's share of the files (`None`: all of them).
    pub shard: Option<Shard>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            max_file_bytes: 1 << 20,
            max_line_bytes: 4096,
            skip_vendored: true,
            skip_lock_files: true,
            include_hidden: false,
            follow_symlinks: false,
            languages: LanguageMap::default(),
            only: Vec::new(),
            shard: None,
        }
    }
}

impl WalkOptions {
    /// Whether a file at `rel_path` (relative, `/`-separated) is inside the walk's scope.
    pub fn covers(&self, rel_path: &str) -> bool {
        self.scope().contains(rel_path, false)
    }

    /// Whether the walk covers only part of the tree (some paths, or a shard's share).
    pub fn is_partial(&self) -> bool {
        !self.only.is_empty() || self.shard.is_some()
    }

    fn scope(&self) -> Scope {
        Scope {
            only: self.only.clone(),
            shard: self.shard.clone(),
        }
    }
}

/// Which entries a walk covers: those inside `only`'s paths and, of the files, the
/// shard's share (every folder may hold some of it).
#[derive(Debug, Clone)]
struct Scope {
    only: Vec<String>,
    shard: Option<Shard>,
}

impl Scope {
    fn contains(&self, rel: &str, is_dir: bool) -> bool {
        in_scope(&self.only, rel, is_dir)
            && (is_dir || self.shard.as_ref().is_none_or(|shard| shard.owns(rel)))
    }
}

/// Whether `rel` (relative to the root, `/`-separated) lies inside one of `only`'s
/// paths or, for a folder, leads to one (the walk must enter it to reach them).
fn in_scope(only: &[String], rel: &str, is_dir: bool) -> bool {
    let trim = |s: &'_ str| s.trim_start_matches("./").trim_matches('/').to_string();
    let rel = trim(rel);
    only.is_empty()
        || only.iter().any(|scope| {
            let scope = trim(scope);
            scope.is_empty()
                || scope == "."
                || is_at_or_under(&rel, &scope)
                || (is_dir && (rel.is_empty() || is_at_or_under(&scope, &rel)))
        })
}

/// Whether `path` is `folder` or lies below it (`/`-separated relative paths).
pub(crate) fn is_at_or_under(path: &str, folder: &str) -> bool {
    path.strip_prefix(folder)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `path` relative to `root` with `/` separators (empty for the root itself); `None`
/// for a path outside the root or a name that is not UTF-8.
pub(super) fn relative_str(root: &Path, path: &Path) -> Option<String> {
    Some(path.strip_prefix(root).ok()?.to_str()?.replace('\\', "/"))
}

/// A file that passed the walk's checks.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the root, `/`-separated.
    pub rel_path: String,
    /// Language.
    pub language: String,
    /// Text (decoded lossily when the file is not valid UTF-8).
    pub text: String,
    /// The raw bytes' hash.
    pub hash: String,
    /// Bytes read.
    pub bytes: u64,
    /// Whether invalid UTF-8 was replaced.
    pub lossy: bool,
}

/// A file the walk found with a known language, not yet read.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Absolute (or root-joined) path.
    pub path: PathBuf,
    /// Path relative to the root, `/`-separated.
    pub rel_path: String,
    /// Language.
    pub language: String,
}

/// One outcome of the walk.
#[derive(Debug)]
pub enum WalkItem {
    /// A file to read and index.
    File(Candidate),
    /// A file or folder skipped, with the reason.
    Skipped(SkipReason, PathBuf),
}

/// Walks `root` and yields every file's outcome, in file-name order, reading nothing
/// but directories ([`read_source`] reads the files); the hidden and ignored files and
/// folders the walk left out come last, each folder once. The `exclude` folders (the
/// database, the embedding cache) are never entered.
pub fn walk<'a>(
    root: &'a Path,
    options: &'a WalkOptions,
    exclude: Vec<PathBuf>,
) -> impl Iterator<Item = WalkItem> + 'a {
    let skip_vendored = options.skip_vendored;
    let is_excluded = {
        let exclude = exclude.clone();
        move |path: &Path| exclude.iter().any(|folder| folder == path)
    };
    let scoped = {
        let (root, scope) = (root.to_path_buf(), options.scope());
        move |path: &Path, is_dir: bool| {
            relative_str(&root, path).is_none_or(|rel| scope.contains(&rel, is_dir))
        }
    };
    let walker = WalkBuilder::new(root)
        .hidden(!options.include_hidden)
        .follow_links(options.follow_symlinks)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .ignore(true)
        .parents(true)
        .require_git(false)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && (entry.file_name() == ".git" || is_excluded(entry.path())))
                && scoped(entry.path(), is_dir)
        })
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut unlisted = Unlisted {
        exclude,
        root: root.to_path_buf(),
        scope: options.scope(),
        include_hidden: options.include_hidden,
        pending: BTreeSet::new(),
    };
    let mut walker = walker;
    let mut filtered: Option<std::vec::IntoIter<WalkItem>> = None;
    std::iter::from_fn(move || loop {
        if let Some(filtered) = filtered.as_mut() {
            return filtered.next();
        }
        match walker.next() {
            Some(entry) => {
                unlisted.saw(&entry);
                if let Some(item) = item_of(entry, root, options, skip_vendored) {
                    return Some(item);
                }
            }
            None => filtered = Some(unlisted.take_items().into_iter()),
        }
    })
}

/// What one walker entry becomes; `None` for folders, which only hold files.
fn item_of(
    entry: Result<ignore::DirEntry, ignore::Error>,
    root: &Path,
    options: &WalkOptions,
    skip_vendored: bool,
) -> Option<WalkItem> {
    let entry = match entry {
        Ok(entry) => entry,
        Err(err) => {
            let path = error_path(&err).unwrap_or_default();
            return Some(WalkItem::Skipped(SkipReason::Unreadable, path));
        }
    };
    let path = entry.path().to_path_buf();
    let file_type = entry.file_type()?;
    if file_type.is_symlink() {
        return Some(WalkItem::Skipped(SkipReason::Symlink, path));
    }
    if file_type.is_dir() {
        return None;
    }
    if !file_type.is_file() {
        return Some(WalkItem::Skipped(SkipReason::Special, path));
    }
    let rel = path.strip_prefix(root).unwrap_or(&path);
    let vendored = rel
        .components()
        .any(|c| VENDORED_DIRS.contains(&c.as_os_str().to_string_lossy().as_ref()));
    if skip_vendored && vendored {
        return Some(WalkItem::Skipped(SkipReason::Vendored, path));
    }
    Some(classify(&path, rel, options))
}

/// The entries the walker leaves out without a word (hidden files, paths a `.gitignore`
/// or `.ignore` names), so that the summary can count them: the children of every folder
/// it entered, less the entries it yielded. A filtered folder counts once, unentered.
struct Unlisted {
    exclude: Vec<PathBuf>,
    root: PathBuf,
    /// The walk's scope: entries outside it are not expected.
    scope: Scope,
    include_hidden: bool,
    pending: BTreeSet<PathBuf>,
}

impl Unlisted {
    fn saw(&mut self, entry: &Result<ignore::DirEntry, ignore::Error>) {
        match entry {
            Ok(entry) => {
                self.pending.remove(entry.path());
                if entry.file_type().is_some_and(|t| t.is_dir()) {
                    self.list(entry.path());
                }
            }
            Err(err) => {
                if let Some(path) = error_path(err) {
                    self.pending.remove(&path);
                }
            }
        }
    }

    /// Notes a folder's children as expected; `.git` and the excluded folders are not
    /// the user's files and go uncounted. A folder that cannot be listed is the walker's
    /// `unreadable` already.
    fn list(&mut self, dir: &Path) {
        let Ok(children) = std::fs::read_dir(dir) else {
            return;
        };
        for child in children.flatten() {
            let path = child.path();
            let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
            let is_git = child.file_name() == ".git" && is_dir;
            let in_scope =
                relative_str(&self.root, &path).is_none_or(|rel| self.scope.contains(&rel, is_dir));
            if !is_git && in_scope && !self.exclude.contains(&path) {
                self.pending.insert(path);
            }
        }
    }

    /// What is still expected once the walk has ended, in path order.
    fn take_items(&mut self) -> Vec<WalkItem> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|path| {
                let dotted = path
                    .file_name()
                    .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."));
                let reason = if dotted && !self.include_hidden {
                    SkipReason::Hidden
                } else {
                    SkipReason::Ignored
                };
                WalkItem::Skipped(reason, path)
            })
            .collect()
    }
}

/// Reads a candidate and applies the content checks (size, binary, generated).
pub fn read_source(candidate: Candidate, options: &WalkOptions) -> Result<SourceFile, SkipReason> {
    let Candidate {
        path,
        rel_path,
        language,
    } = candidate;
    let mut file = open_without_blocking(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SkipReason::Vanished,
        _ => SkipReason::Unreadable,
    })?;
    match file.metadata() {
        Ok(meta) if !meta.is_file() => return Err(SkipReason::Special),
        Ok(meta) if meta.len() > options.max_file_bytes => return Err(SkipReason::TooLarge),
        Ok(_) => {}
        Err(_) => return Err(SkipReason::Unreadable),
    }
    // Read at most one byte past the limit: a file that grew since stat is still caught.
    let mut bytes = Vec::new();
    file.by_ref()
        .take(options.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| SkipReason::Unreadable)?;
    if bytes.len() as u64 > options.max_file_bytes {
        return Err(SkipReason::TooLarge);
    }
    if looks_binary(&bytes) {
        return Err(SkipReason::Binary);
    }
    if bytes
        .split(|&b| b == b'\n')
        .any(|line| line.len() > options.max_line_bytes)
    {
        return Err(SkipReason::Generated);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(SkipReason::Empty);
    }
    let hash = content_hash(&bytes);
    let read = bytes.len() as u64;
    let (text, lossy) = match String::from_utf8(bytes) {
        Ok(text) => (text, false),
        Err(err) => (String::from_utf8_lossy(err.as_bytes()).into_owned(), true),
    };
    Ok(SourceFile {
        rel_path,
        language,
        bytes: read,
        text,
        hash,
        lossy,
    })
}

/// Opens `path` for reading. On Unix the open does not wait: a file replaced by a FIFO
/// after the walk would otherwise block the reader until some process writes to it.
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

fn classify(path: &Path, rel: &Path, options: &WalkOptions) -> WalkItem {
    let skipped = |reason| WalkItem::Skipped(reason, path.to_path_buf());
    let Some(rel_path) = rel.to_str().map(|s| s.replace('\\', "/")) else {
        return skipped(SkipReason::NonUtf8Name);
    };
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if options.skip_lock_files && LOCK_FILES.contains(&name) {
        return skipped(SkipReason::LockFile);
    }
    let Some(language) = options.languages.detect(rel) else {
        return skipped(SkipReason::UnknownLanguage);
    };
    WalkItem::File(Candidate {
        path: path.to_path_buf(),
        rel_path,
        language: language.to_string(),
    })
}

/// A NUL byte in the first 8 KiB marks a binary file (as git and ripgrep decide).
fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

#[cfg(test)]
mod tests {
    use super::in_scope;

    #[test]
    fn a_scope_holds_its_paths_and_the_folders_leading_to_them() {
        let only = ["src/a.rs".to_string(), "./lib/".to_string()];
        assert!(in_scope(&only, "src/a.rs", false));
        assert!(in_scope(&only, "lib/deep/x.rs", false));
        assert!(in_scope(&only, "src", true), "a folder leading to a scope");
        assert!(in_scope(&only, "", true), "the root");
        assert!(!in_scope(&only, "src/a.rs.bak", false));
        assert!(!in_scope(&only, "src/b.rs", false));
        assert!(!in_scope(&only, "src", false), "a file is not a folder");
        assert!(!in_scope(&only, "library", true));
        assert!(in_scope(&[], "anything", false), "no scope: the whole tree");
        assert!(in_scope(&[".".to_string()], "x/y", false));
    }
}
