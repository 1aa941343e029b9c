//! Build contexts: the files a Dockerfile sees, as an in-memory tar, and the source
//! hash that says whether an existing image was built from exactly these inputs.

use std::collections::BTreeMap;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::catalog::SourceFile;

/// Every context entry gets this modification time, so that the same inputs make a
/// byte-identical tar (2023-01-01T00:00:00Z; Docker's cache ignores it either way).
const FIXED_MTIME: u64 = 1_672_531_200;

/// The files of one build context, by path; the order of insertion does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BuildContext {
    files: BTreeMap<String, ContextFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ContextFile {
    mode: u32,
    contents: Vec<u8>,
}

impl BuildContext {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A context holding the embedded files of a recipe.
    pub(crate) fn from_sources(files: &[SourceFile]) -> Self {
        let mut context = Self::new();
        for file in files {
            context.add(file.path, file.mode, file.contents.to_vec());
        }
        context
    }

    /// Adds (or replaces) a file.
    pub(crate) fn add(&mut self, path: &str, mode: u32, contents: Vec<u8>) {
        self.files.insert(
            path.trim_start_matches('/').to_owned(),
            ContextFile { mode, contents },
        );
    }

    /// Appends one `LABEL` instruction with `labels` to the Dockerfile at `path`: one
    /// build step (the engine's `labels` option costs a step per label), added after
    /// hashing so that the hash it carries is the hash of the sources.
    pub(crate) fn append_labels(
        &mut self,
        path: &str,
        labels: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let Some(file) = self.files.get_mut(path) else {
            anyhow::bail!("the build context has no {path}");
        };
        let mut sorted: Vec<_> = labels.iter().collect();
        sorted.sort();
        let mut line = String::from("\nLABEL");
        for (key, value) in sorted {
            anyhow::ensure!(
                !key.contains(['"', '\\', '\n', ' ', '=']) && !value.contains(['"', '\\', '\n']),
                "label {key}={value} cannot be written into a Dockerfile"
            );
            line.push_str(&format!(" {key}=\"{value}\""));
        }
        line.push('\n');
        file.contents.extend_from_slice(line.as_bytes());
        Ok(())
    }

    /// Total size of the files, for progress messages.
    pub(crate) fn size(&self) -> usize {
        self.files.values().map(|f| f.contents.len()).sum()
    }

    /// A hash of every path, mode and content, plus `extra` inputs (the parent image's
    /// id, build labels …). Equal hashes mean the build would produce the same image.
    pub(crate) fn source_hash(&self, extra: &[&str]) -> String {
        let mut hasher = Sha256::new();
        // Length-prefixed fields: no two different inputs serialise the same way.
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"shopstack-image-context-v1");
        for (path, file) in &self.files {
            field(path.as_bytes());
            field(&file.mode.to_le_bytes());
            field(&file.contents);
        }
        for value in extra {
            field(value.as_bytes());
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// The context as an uncompressed tar, as `POST /build` takes it.
    pub(crate) fn to_tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::with_capacity(self.size() + 64 * 1024));
        for (path, file) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.contents.len() as u64);
            header.set_mode(file.mode);
            header.set_mtime(FIXED_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, path, file.contents.as_slice())
                .with_context(|| format!("adding {path} to the build context"))?;
        }
        builder
            .into_inner()
            .context("finishing the build context tar")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn sample() -> BuildContext {
        let mut context = BuildContext::new();
        context.add("Dockerfile", 0o644, b"FROM scratch\n".to_vec());
        context.add("bin/run.sh", 0o755, b"#!/bin/sh\n".to_vec());
        context
    }

    #[test]
    fn tar_holds_every_file_with_its_mode() {
        let tar = sample().to_tar().unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut contents = String::new();
            entry.read_to_string(&mut contents).unwrap();
            seen.push((path, mode, contents));
        }
        assert_eq!(
            seen,
            vec![
                ("Dockerfile".to_owned(), 0o644, "FROM scratch\n".to_owned()),
                ("bin/run.sh".to_owned(), 0o755, "#!/bin/sh\n".to_owned()),
            ]
        );
    }

    #[test]
    fn labels_become_one_instruction() {
        let mut context = sample();
        let labels = std::collections::HashMap::from([
            ("shopstack.source-hash".to_owned(), "sha256:ab".to_owned()),
            (
                "shopstack.image-component".to_owned(),
                "postgres".to_owned(),
            ),
        ]);
        context.append_labels("Dockerfile", &labels).unwrap();
        let dockerfile = &context.files["Dockerfile"].contents;
        assert_eq!(
            String::from_utf8_lossy(dockerfile),
            "FROM scratch\n\nLABEL shopstack.image-component=\"postgres\" \
             shopstack.source-hash=\"sha256:ab\"\n"
        );
        let bad = std::collections::HashMap::from([("a".to_owned(), "x\"y".to_owned())]);
        assert!(context.append_labels("Dockerfile", &bad).is_err());
        assert!(context.append_labels("Nope", &labels).is_err());
    }

    #[test]
    fn tar_is_reproducible() {
        let mut reversed = BuildContext::new();
        reversed.add("bin/run.sh", 0o755, b"#!/bin/sh\n".to_vec());
        reversed.add("Dockerfile", 0o644, b"FROM scratch\n".to_vec());
        assert_eq!(sample().to_tar().unwrap(), reversed.to_tar().unwrap());
        assert_eq!(sample().source_hash(&[]), reversed.source_hash(&[]));
    }

    #[test]
    fn hash_changes_with_content_mode_path_and_extra_inputs() {
        let base = sample().source_hash(&["sha256:parent"]);
        assert!(base.starts_with("sha256:"));

        let mut content = sample();
        content.add("Dockerfile", 0o644, b"FROM scratch \n".to_vec());
        let mut mode = sample();
        mode.add("bin/run.sh", 0o644, b"#!/bin/sh\n".to_vec());
        let mut path = BuildContext::new();
        path.add("Dockerfile", 0o644, b"FROM scratch\n".to_vec());
        path.add("bin/run2.sh", 0o755, b"#!/bin/sh\n".to_vec());

        for other in [
            content.source_hash(&["sha256:parent"]),
            mode.source_hash(&["sha256:parent"]),
            path.source_hash(&["sha256:parent"]),
            sample().source_hash(&["sha256:other-parent"]),
            sample().source_hash(&[]),
        ] {
            assert_ne!(base, other);
        }
        // Field boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            BuildContext::new().source_hash(&["ab", "c"]),
            BuildContext::new().source_hash(&["a", "bc"])
        );
    }
}
