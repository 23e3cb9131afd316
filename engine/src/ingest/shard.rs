//! [`Shard`]: one worker's share of a repository's files in a sharded indexing job.

use crate::error::{Error, Result};

/// Share `index` of `count` of repository `repo`'s files: the files whose stable hash of
/// repository name and path falls on it. Shards of one job are disjoint and together
/// cover every file; each gets about `1/count` of them, whatever the tree's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u32,
    /// How many shards the job has.
    pub count: u32,
    /// The repository whose files are shared out (part of the hash, so that the same
    /// path in many repositories does not always land on one shard).
    pub repo: String,
}

impl Shard {
    /// Shard `index` of `count` for `repo`; `index` must be below `count`.
    pub fn new(index: u32, count: u32, repo: impl Into<String>) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::InvalidArgument(format!(
                "shard {index}/{count}: expected I/N with 0 <= I < N"
            )));
        }
        Ok(Shard {
            index,
            count,
            repo: repo.into(),
        })
    }

    /// `I/N` as the command line writes it.
    pub fn parse_share(text: &str) -> Result<(u32, u32)> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok((index, count)),
            _ => Err(Error::InvalidArgument(format!(
                "shard `{text}`: expected I/N with 0 <= I < N (e.g. 0/4)"
            ))),
        }
    }

    /// Whether the file at `path` (relative, `/`-separated) is this shard's.
    pub fn owns(&self, path: &str) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(self.repo.as_bytes());
        hasher.update(&[0]);
        hasher.update(path.as_bytes());
        let bytes = hasher.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        u64::from_le_bytes(first) % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_cover_everything_and_are_balanced() {
        let shards: Vec<Shard> = (0..4).map(|i| Shard::new(i, 4, "repo").unwrap()).collect();
        let mut sizes = [0usize; 4];
        for n in 0..4000 {
            let path = format!("src/module_{n}/file.rs");
            let owners: Vec<usize> = (0..4).filter(|&i| shards[i].owns(&path)).collect();
            assert_eq!(owners.len(), 1, "{path} owned by {owners:?}");
            sizes[owners[0]] += 1;
        }
        for size in sizes {
            assert!((850..1150).contains(&size), "unbalanced: {sizes:?}");
        }
        let one = Shard::new(0, 1, "repo").unwrap();
        assert!(one.owns("anything.rs"));
    }

    #[test]
    fn the_repository_is_part_of_the_key() {
        let owner =
            |repo: &str| (0..8).find(|&i| Shard::new(i, 8, repo).unwrap().owns("README.md"));
        let owners: std::collections::BTreeSet<_> =
            (0..20).map(|r| owner(&format!("repo{r}"))).collect();
        assert!(
            owners.len() > 1,
            "README.md of 20 repositories on one shard"
        );
    }

    #[test]
    fn shares_parse_and_bad_ones_are_refused() {
        assert_eq!(Shard::parse_share("2/4").unwrap(), (2, 4));
        assert_eq!(Shard::parse_share(" 0 / 1 ").unwrap(), (0, 1));
        for bad in ["4/4", "1/0", "x/2", "3", "-1/2", ""] {
            assert!(Shard::parse_share(bad).is_err(), "{bad}");
        }
        assert!(Shard::new(3, 3, "r").is_err());
    }
}
