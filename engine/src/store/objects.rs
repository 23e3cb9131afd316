//! Small files (a distributed job's manifests) at a database's location, beside its
//! tables: in its folder or under its object-store URI, with the same settings.

use crate::error::{Error, Result};
use crate::store::{Database, DbLocation};
use lance::io::{ObjectStore, ObjectStoreParams, ObjectStoreRegistry, StorageOptionsAccessor};
use object_store::path::Path as StorePath;
use std::sync::Arc;

fn lance_error(e: lance::Error) -> Error {
    Error::Lance(lancedb::Error::from(e))
}

impl Database {
    /// The object store under the database's location and the location's path in it.
    async fn object_store(&self) -> Result<(Arc<ObjectStore>, StorePath)> {
        let uri = match self.location() {
            // Lance takes local paths absolute; the folder exists once the database does.
            DbLocation::Folder(folder) => std::fs::canonicalize(folder)
                .map_err(|source| Error::Io {
                    path: folder.display().to_string(),
                    source,
                })?
                .display()
                .to_string(),
            DbLocation::ObjectStore(uri) => uri.split('?').next().unwrap_or(uri).to_string(),
        };
        let params = ObjectStoreParams {
            storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
                self.storage_options().iter().cloned().collect(),
            ))),
            ..ObjectStoreParams::default()
        };
        ObjectStore::from_uri_and_params(Arc::new(ObjectStoreRegistry::default()), &uri, &params)
            .await
            .map_err(lance_error)
    }

    /// Writes the file `name` at the database's location, replacing any of that name.
    pub async fn put_file(&self, name: &str, content: &[u8]) -> Result<()> {
        let (store, base) = self.object_store().await?;
        store
            .put(&base.join(name), content)
            .await
            .map_err(lance_error)?;
        Ok(())
    }

    /// The content of the file `name` at the database's location; `None` if there is none.
    pub async fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let (store, base) = self.object_store().await?;
        let path = base.join(name);
        if !store.exists(&path).await.map_err(lance_error)? {
            return Ok(None);
        }
        let bytes = store.read_one_all(&path).await.map_err(lance_error)?;
        Ok(Some(bytes.to_vec()))
    }

    /// Removes the file `name`; one already gone is not an error.
    pub async fn remove_file(&self, name: &str) -> Result<()> {
        let (store, base) = self.object_store().await?;
        let path = base.join(name);
        if store.exists(&path).await.map_err(lance_error)? {
            store.delete(&path).await.map_err(lance_error)?;
        }
        Ok(())
    }

    /// Names of the files (and folders) directly at the database's location that end
    /// with `suffix`, sorted.
    pub async fn file_names(&self, suffix: &str) -> Result<Vec<String>> {
        let (store, base) = self.object_store().await?;
        let mut names: Vec<String> = store
            .read_dir(base)
            .await
            .map_err(lance_error)?
            .into_iter()
            .filter(|name| name.ends_with(suffix))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
