//! Language detection by file name and extension, extensible by configuration.

use std::collections::HashMap;
use std::path::Path;

/// Maps file names and extensions to language names.
#[derive(Debug, Clone)]
pub struct LanguageMap {
    by_extension: HashMap<String, String>,
    by_name: HashMap<String, String>,
}

const EXTENSIONS: &[(&str, &[&str])] = &[
    ("rust", &["rs"]),
    ("python", &["py", "pyi", "pyw"]),
    ("javascript", &["js", "mjs", "cjs", "jsx"]),
    ("typescript", &["ts", "mts", "cts"]),
    ("tsx", &["tsx"]),
    ("go", &["go"]),
    ("java", &["java"]),
    ("c", &["c", "h"]),
    (
        "cpp",
        &[
            "cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "inl",
        ],
    ),
    ("csharp", &["cs"]),
    ("ruby", &["rb", "rake", "gemspec"]),
    ("php", &["php"]),
    ("kotlin", &["kt", "kts"]),
    ("swift", &["swift"]),
    ("scala", &["scala", "sc"]),
    ("shell", &["sh", "bash", "zsh", "fish", "ksh"]),
    ("sql", &["sql"]),
    ("markdown", &["md", "markdown", "mdx"]),
    ("toml", &["toml"]),
    ("yaml", &["yaml", "yml"]),
    ("json", &["json", "jsonc", "json5"]),
    ("lua", &["lua"]),
    ("haskell", &["hs"]),
    ("elixir", &["ex", "exs"]),
    ("erlang", &["erl", "hrl"]),
    ("ocaml", &["ml", "mli"]),
    ("r", &["r"]),
    ("dart", &["dart"]),
    ("zig", &["zig"]),
    ("protobuf", &["proto"]),
    ("html", &["html", "htm"]),
    ("css", &["css", "scss", "sass", "less"]),
    ("vue", &["vue"]),
    ("svelte", &["svelte"]),
    ("text", &["txt", "rst", "adoc"]),
];

const FILE_NAMES: &[(&str, &str)] = &[
    ("Makefile", "make"),
    ("makefile", "make"),
    ("GNUmakefile", "make"),
    ("Dockerfile", "dockerfile"),
    ("CMakeLists.txt", "cmake"),
    ("Rakefile", "ruby"),
    ("Gemfile", "ruby"),
    ("BUILD", "starlark"),
    ("BUILD.bazel", "starlark"),
    ("WORKSPACE", "starlark"),
    ("Justfile", "just"),
];

impl Default for LanguageMap {
    fn default() -> Self {
        let mut by_extension = HashMap::new();
        for (language, extensions) in EXTENSIONS {
            for ext in *extensions {
                by_extension.insert(ext.to_string(), language.to_string());
            }
        }
        let by_name = FILE_NAMES
            .iter()
            .map(|(n, l)| (n.to_string(), l.to_string()))
            .collect();
        LanguageMap {
            by_extension,
            by_name,
        }
    }
}

impl LanguageMap {
    /// Adds or overrides an extension (without the dot, case-insensitive).
    pub fn add_extension(&mut self, extension: &str, language: &str) {
        self.by_extension.insert(
            extension.trim_start_matches('.').to_ascii_lowercase(),
            language.to_ascii_lowercase(),
        );
    }

    /// Parses `ext=language` pairs (as given on the command line) and adds them.
    pub fn add_mapping(&mut self, mapping: &str) -> Result<(), String> {
        let (ext, lang) = mapping
            .split_once('=')
            .filter(|(e, l)| !e.trim().is_empty() && !l.trim().is_empty())
            .ok_or_else(|| format!("`{mapping}` is not of the form EXT=LANGUAGE"))?;
        self.add_extension(ext.trim(), lang.trim());
        Ok(())
    }

    /// The language of `path`, if known.
    pub fn detect(&self, path: &Path) -> Option<&str> {
        let name = path.file_name()?.to_str()?;
        if let Some(lang) = self.by_name.get(name) {
            return Some(lang);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        self.by_extension.get(&ext).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn detects_by_extension_and_name_and_accepts_additions() {
        let mut map = LanguageMap::default();
        assert_eq!(map.detect(Path::new("src/main.rs")), Some("rust"));
        assert_eq!(map.detect(Path::new("a/B.JAVA")), Some("java"));
        assert_eq!(map.detect(Path::new("x/Makefile")), Some("make"));
        assert_eq!(map.detect(Path::new("x/component.tsx")), Some("tsx"));
        assert_eq!(map.detect(Path::new("x/file.unknownext")), None);
        assert_eq!(map.detect(Path::new("noext")), None);
        map.add_mapping(".unknownext=Fortran").unwrap();
        assert_eq!(map.detect(Path::new("x/file.unknownext")), Some("fortran"));
        assert!(map.add_mapping("nolang").is_err());
    }

    #[cfg(unix)]
    fn path_of(bytes: &[u8]) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStrExt;
        std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }

    #[cfg(not(unix))]
    fn path_of(bytes: &[u8]) -> std::path::PathBuf {
        std::path::PathBuf::from(String::from_utf8_lossy(bytes).as_ref())
    }

    /// Bytes that make paths interesting: separators, dots, case, NUL, invalid UTF-8.
    fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> = b"./\\=._-aZ9\0\xff\xc3\xa9 rsRSpy".to_vec();
        prop::collection::vec(
            prop_oneof![any::<u8>(), prop::sample::select(alphabet)],
            0..32,
        )
    }

    /// A fixed seed (see `chunk/tests/arbitrary_input.rs`): CI explores the same cases
    /// on every run; `PROPTEST_RNG_SEED=<n>` explores others.
    fn config(cases: u32) -> ProptestConfig {
        let default = ProptestConfig::with_cases(cases);
        let rng_seed = match default.rng_seed {
            proptest::test_runner::RngSeed::Random => {
                proptest::test_runner::RngSeed::Fixed(0x1a2c_e7c0_de5e_ed02)
            }
            chosen => chosen,
        };
        ProptestConfig {
            rng_seed,
            ..default
        }
    }

    proptest! {
        #![proptest_config(config(2_000))]

        /// Arbitrary bytes as paths and mappings: no panic, and an answer is always one
        /// of the map's languages.
        #[test]
        fn arbitrary_paths_and_mappings_answer_only_known_languages(
            path in path_bytes(),
            mapping in path_bytes(),
        ) {
            let mut map = LanguageMap::default();
            let _ = map.add_mapping(&String::from_utf8_lossy(&mapping));
            if let Some(language) = map.detect(&path_of(&path)) {
                prop_assert!(
                    map.by_extension.values().chain(map.by_name.values()).any(|k| k == language),
                    "{:?} -> {}", path_of(&path), language
                );
            }
        }

        /// The folders a file sits in never change its language.
        #[test]
        fn folders_do_not_change_the_language(dir in path_bytes(), name in path_bytes()) {
            let name: Vec<u8> = name.into_iter().filter(|&b| b != b'/').collect();
            prop_assume!(!name.is_empty() && name != b"." && name != b"..");
            let map = LanguageMap::default();
            let mut nested = dir;
            nested.push(b'/');
            nested.extend_from_slice(&name);
            prop_assert_eq!(map.detect(&path_of(&nested)), map.detect(&path_of(&name)));
        }

        /// An `EXT=LANGUAGE` mapping is found for any file with that extension, in any
        /// letter case.
        #[test]
        fn an_added_mapping_is_detected(
            ext in "[A-Za-z0-9_]{1,8}",
            language in "[A-Za-z][A-Za-z0-9+#-]{0,11}",
            stem in "[a-z]{1,6}",
            upper in any::<bool>(),
        ) {
            let mut map = LanguageMap::default();
            map.add_mapping(&format!(" .{ext} = {language} ")).unwrap();
            let ext = if upper { ext.to_ascii_uppercase() } else { ext.to_ascii_lowercase() };
            let path = format!("some/dir/{stem}.{ext}");
            let expected = language.to_ascii_lowercase();
            prop_assert_eq!(map.detect(Path::new(&path)), Some(expected.as_str()));
        }
    }
}
