use super::*;
use lancet_schemas::{ModelIdentity, Pooling};
use std::time::{Duration, SystemTime};

fn model(revision: &str, dim: usize) -> ModelIdentity {
    ModelIdentity {
        id: "test/model".into(),
        revision: revision.into(),
        pooling: Pooling::LastToken,
        prompt_set: "p".into(),
        dim,
    }
}

fn vector(seed: u32, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| (seed * 31 + i as u32) as f32 * 0.25 - 3.0)
        .collect()
}

fn set_used(namespace: &CacheNamespace, text: &str, ago: Duration) {
    let path = namespace.entry_path(&namespace.text_key(text));
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn a_stored_vector_comes_back_exactly_and_only_for_its_model_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), DEFAULT_MAX_BYTES);
    let cpu = cache.namespace(&model("r1", 8), "cpu-f32");
    cache.put(&cpu, "fn a() {}", &vector(1, 8)).unwrap();
    assert_eq!(cache.get(&cpu, "fn a() {}"), Some(vector(1, 8)));
    assert!(cache.contains(&cpu, "fn a() {}"));
    assert_eq!(cache.get(&cpu, "fn a() { }"), None);
    // Other numerics or other weights: other vectors.
    let q8 = cache.namespace(&model("r1", 8), "cpu-q8");
    assert_eq!(cache.get(&q8, "fn a() {}"), None);
    let other = cache.namespace(&model("r2", 8), "cpu-f32");
    assert_eq!(cache.get(&other, "fn a() {}"), None);
    // A rewrite replaces the entry whole.
    cache.put(&cpu, "fn a() {}", &vector(2, 8)).unwrap();
    assert_eq!(cache.get(&cpu, "fn a() {}"), Some(vector(2, 8)));
    assert!(cache.put(&cpu, "x", &vector(1, 7)).is_err());
}

#[test]
fn a_damaged_or_misplaced_entry_is_a_miss_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), DEFAULT_MAX_BYTES);
    let ns = cache.namespace(&model("r1", 4), "cpu-f32");
    let path = |text: &str| ns.entry_path(&ns.text_key(text));
    for text in ["flipped", "truncated", "moved"] {
        cache.put(&ns, text, &vector(3, 4)).unwrap();
    }
    let mut bytes = std::fs::read(path("flipped")).unwrap();
    bytes[10] ^= 0x40;
    std::fs::write(path("flipped"), &bytes).unwrap();
    let bytes = std::fs::read(path("truncated")).unwrap();
    std::fs::write(path("truncated"), &bytes[..bytes.len() - 3]).unwrap();
    // A whole entry under another key's name: its checksum names its own key.
    let elsewhere = path("elsewhere");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::copy(path("moved"), &elsewhere).unwrap();

    for text in ["flipped", "truncated", "elsewhere"] {
        assert_eq!(cache.get(&ns, text), None, "{text}");
        assert!(!path(text).exists(), "{text} left in place");
    }
    assert_eq!(cache.get(&ns, "moved"), Some(vector(3, 4)));
}

#[test]
fn pruning_removes_the_least_recently_used_first_and_the_stale() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), DEFAULT_MAX_BYTES);
    let ns = cache.namespace(&model("r1", 16), "cpu-f32");
    for (i, text) in ["a", "b", "c", "d"].into_iter().enumerate() {
        cache.put(&ns, text, &vector(i as u32, 16)).unwrap();
        set_used(&ns, text, Duration::from_secs(1000 - 100 * i as u64));
    }
    set_used(&ns, "d", Duration::from_secs(10 * 86_400));
    // A read is a use: `a` becomes the most recent.
    assert!(cache.get(&ns, "a").is_some());
    let entry_bytes = cache.stats().unwrap().bytes / 4;

    let report = cache
        .prune(None, Some(Duration::from_secs(86_400)))
        .unwrap();
    assert_eq!((report.removed, report.kept), (1, 3));
    assert!(!cache.contains(&ns, "d"));

    let report = cache.prune(Some(2 * entry_bytes), None).unwrap();
    assert_eq!((report.removed, report.kept), (1, 2));
    assert!(
        !cache.contains(&ns, "b"),
        "the least recently used goes first"
    );
    assert!(cache.contains(&ns, "a") && cache.contains(&ns, "c"));
    assert_eq!(report.bytes_kept, 2 * entry_bytes);

    assert_eq!(cache.clear().unwrap().kept, 0);
    assert_eq!(cache.stats().unwrap().entries, 0);
}

#[test]
fn stats_name_each_model_and_abandoned_temporary_files_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path().join("cache"), DEFAULT_MAX_BYTES);
    assert_eq!(
        cache.stats().unwrap().entries,
        0,
        "a missing folder is empty"
    );
    let (m1, m2) = (model("r1", 4), model("r2", 4));
    let (n1, n2) = (
        cache.namespace(&m1, "cpu-f32"),
        cache.namespace(&m2, "cpu-f32"),
    );
    cache.describe(&n1, &m1, "cpu-f32");
    for text in ["x", "y"] {
        cache.put(&n1, text, &vector(1, 4)).unwrap();
    }
    cache.put(&n2, "x", &vector(1, 4)).unwrap();
    let leftover = n1.entry_path(&n1.text_key("x")).with_file_name(".9.9.tmp");
    std::fs::write(&leftover, b"half an entry").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();

    let stats = cache.stats().unwrap();
    assert_eq!(stats.entries, 3);
    let described = stats.models.iter().find(|m| m.entries == 2).unwrap();
    assert_eq!(described.model["revision"], "r1");
    assert_eq!(described.model["numerics"], "cpu-f32");
    assert!(
        !leftover.exists(),
        "a killed writer's leftover stays forever"
    );
}

#[test]
fn concurrent_writers_and_readers_never_see_a_torn_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = EmbeddingCache::new(dir.path(), DEFAULT_MAX_BYTES);
    let ns = cache.namespace(&model("r1", 256), "cpu-f32");
    let expected = vector(5, 256);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..200 {
                    cache.put(&ns, "shared", &expected).unwrap();
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..400 {
                    if let Some(found) = cache.get(&ns, "shared") {
                        assert_eq!(found, expected);
                    }
                }
            });
        }
    });
    assert_eq!(cache.get(&ns, "shared"), Some(expected));
}
