//! `s3://` paths for the filesystem sink: each part file is an S3 multipart upload.
//!
//! Bytes are uploaded in parts of 8 MiB while the file is written; closing the file uploads
//! the last part and leaves the upload *pending*: no object exists under the table's path
//! yet. Pending uploads are completed (the object appears, whole, at once) when the sink
//! commits: at the end of the job, or, with checkpoints, when the checkpoint that holds the
//! upload ([`S3Pending`]: key, upload id and parts) completes. An upload that is dropped
//! before it was completed or handed to a checkpoint (the job failed or was stopped) is
//! aborted, so no parts are left behind to be billed.
//!
//! The client comes from the standard AWS chain, with `aws.region` and `aws.endpoint` (or
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`), and path-style addressing when an endpoint
//! is set (`s3.path-style-access`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use aws_config::SdkConfig;

use crate::aws::{retry, runtime, AwsOptions, Failure};

/// Bytes per uploaded part (S3 wants at least 5 MiB for every part but the last).
const PART_BYTES: usize = 8 << 20;

/// An `s3://bucket/prefix` location with its client options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    pub aws: AwsOptions,
    /// `s3.path-style-access`: `bucket` in the path rather than the host name. Defaults to
    /// true when an endpoint is set (emulators, MinIO), false against AWS.
    pub path_style: Option<bool>,
}

impl S3Location {
    /// Parses `s3://bucket/prefix` (also `s3a://`, as Flink users write); `None` when `path`
    /// is not an S3 URL.
    pub fn take(path: &str, options: &mut Options) -> Result<Option<Self>> {
        let Some(rest) = path
            .strip_prefix("s3://")
            .or_else(|| path.strip_prefix("s3a://"))
        else {
            return Ok(None);
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::config(format!(
                "table '{}': option 'path' = '{path}' names no bucket",
                options.table()
            )));
        }
        Ok(Some(Self {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            aws: AwsOptions::take(options)?,
            path_style: options.take_bool("s3.path-style-access")?,
        }))
    }

    /// `s3://bucket/prefix/`, as catalogs want a table's location.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{}/", self.bucket, self.prefix)
        }
    }

    /// The key prefix of everything below the location: `prefix/`, or `""` for the root.
    pub fn folder(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    /// The object key of `name` in partition folder `folder` (`""` or `a=1/b=2`).
    pub fn key(&self, folder: &str, name: &str) -> String {
        [self.prefix.as_str(), folder, name]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    /// Changes whenever the object is written again.
    pub etag: String,
    pub size: i64,
}

/// A connected S3 location, shared by the writers of one table.
pub struct S3Target {
    /// What the location serves, for messages: `table 'metrics'`.
    pub subject: String,
    pub location: S3Location,
    client: Client,
}

impl S3Target {
    /// Connects and checks that the bucket exists and can be reached.
    pub fn connect(subject: &str, location: &S3Location, sdk: &SdkConfig) -> Result<Arc<Self>> {
        runtime().block_on(async {
            let custom_endpoint = location.aws.endpoint.is_some()
                || std::env::var_os("AWS_ENDPOINT_URL").is_some()
                || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
            let config = aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(location.path_style.unwrap_or(custom_endpoint))
                .build();
            let target = Self {
                subject: subject.to_string(),
                location: location.clone(),
                client: Client::from_conf(config),
            };
            let what = format!("{subject}: HeadBucket");
            retry(&what, None, || {
                let call = target.client.head_bucket().bucket(&location.bucket);
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            })
            .await
            .map_err(|f| target.error("HeadBucket", "", &f))?;
            Ok(Arc::new(target))
        })
    }

    /// The one sentence a failed call stops the job with, naming bucket and key.
    fn error(&self, call: &str, key: &str, failure: &Failure) -> Error {
        let bucket = &self.location.bucket;
        let at = if key.is_empty() {
            format!("S3 bucket '{bucket}'")
        } else {
            format!("s3://{bucket}/{key}")
        };
        match failure {
            Failure::NotFound(_) => Error::connector(format!(
                "{}: S3 bucket '{bucket}' does not exist ({call} failed)",
                self.subject
            )),
            f if f.is_fatal("AccessDenied") || f.is_fatal("Forbidden") => {
                Error::connector(format!(
                    "{}: access to {at} was denied ({call}): {}",
                    self.subject,
                    f.describe()
                ))
            }
            other => Error::connector(format!(
                "{}: {at}: {call} failed: {}",
                self.subject,
                other.describe()
            )),
        }
    }

    /// Writes a whole object at once (a `_SUCCESS` marker, a small file).
    pub fn put_object(&self, key: &str, body: Vec<u8>) -> Result<()> {
        let what = format!("{}: PutObject {key}", self.subject);
        runtime()
            .block_on(retry(&what, None, || {
                let call = self
                    .client
                    .put_object()
                    .bucket(&self.location.bucket)
                    .key(key)
                    .body(ByteStream::from(body.clone()));
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            }))
            .map(|_| ())
            .map_err(|f| self.error("PutObject", key, &f))
    }

    /// Reads object `key`; `None` when it does not exist.
    pub fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let what = format!("{}: GetObject {key}", self.subject);
        let result = runtime().block_on(retry(&what, None, || {
            let call = self
                .client
                .get_object()
                .bucket(&self.location.bucket)
                .key(key);
            async move {
                let output = call.send().await.map_err(|e| Failure::of(&e))?;
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| Failure::Transient(e.to_string()))?;
                Ok(bytes.into_bytes().to_vec())
            }
        }));
        match result {
            Ok(bytes) => Ok(Some(bytes)),
            Err(Failure::NotFound(_)) => Ok(None),
            Err(f) if f.is_fatal("NoSuchKey") => Ok(None),
            Err(f) => Err(self.error("GetObject", key, &f)),
        }
    }

    /// The keys below `prefix` (with `delimiter`: the keys and common prefixes one level
    /// down, each once).
    pub fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.list_pages(prefix, delimiter, |page| {
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(String::from)),
            );
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(String::from)),
            );
        })?;
        Ok(out)
    }

    /// The objects below `prefix`, with what tells their versions apart.
    pub fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectEntry>> {
        let mut out = Vec::new();
        self.list_pages(prefix, None, |page| {
            out.extend(page.contents().iter().filter_map(|o| {
                Some(ObjectEntry {
                    key: o.key()?.to_string(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or_default(),
                })
            }))
        })?;
        Ok(out)
    }

    /// Calls `each` with every page of a listing.
    fn list_pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut each: impl FnMut(&aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output),
    ) -> Result<()> {
        let what = format!("{}: ListObjectsV2 {prefix}", self.subject);
        let mut token: Option<String> = None;
        loop {
            let page = runtime()
                .block_on(retry(&what, None, || {
                    let call = self
                        .client
                        .list_objects_v2()
                        .bucket(&self.location.bucket)
                        .prefix(prefix)
                        .set_delimiter(delimiter.map(String::from))
                        .set_continuation_token(token.clone());
                    async move { call.send().await.map_err(|e| Failure::of(&e)) }
                }))
                .map_err(|f| self.error("ListObjectsV2", prefix, &f))?;
            each(&page);
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(()),
            }
        }
    }

    /// Deletes object `key` (a missing one is fine).
    pub fn delete_object(&self, key: &str) -> Result<()> {
        let what = format!("{}: DeleteObject {key}", self.subject);
        runtime()
            .block_on(retry(&what, None, || {
                let call = self
                    .client
                    .delete_object()
                    .bucket(&self.location.bucket)
                    .key(key);
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            }))
            .map(|_| ())
            .map_err(|f| self.error("DeleteObject", key, &f))
    }

    /// The unfinished multipart uploads below `prefix`: key and upload id.
    pub fn uploads(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let what = format!("{}: ListMultipartUploads {prefix}", self.subject);
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let page = runtime()
                .block_on(retry(&what, None, || {
                    let call = self
                        .client
                        .list_multipart_uploads()
                        .bucket(&self.location.bucket)
                        .prefix(prefix)
                        .set_key_marker(marker.as_ref().map(|m| m.0.clone()))
                        .set_upload_id_marker(marker.as_ref().map(|m| m.1.clone()));
                    async move { call.send().await.map_err(|e| Failure::of(&e)) }
                }))
                .map_err(|f| self.error("ListMultipartUploads", prefix, &f))?;
            out.extend(
                page.uploads()
                    .iter()
                    .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string()))),
            );
            match (page.next_key_marker(), page.next_upload_id_marker()) {
                (Some(key), Some(id)) if page.is_truncated() == Some(true) => {
                    marker = Some((key.to_string(), id.to_string()))
                }
                _ => return Ok(out),
            }
        }
    }

    /// Aborts an unfinished upload (one that is gone already is fine).
    pub fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()> {
        let what = format!("{}: AbortMultipartUpload {key}", self.subject);
        let result = runtime().block_on(retry(&what, None, || {
            let call = self
                .client
                .abort_multipart_upload()
                .bucket(&self.location.bucket)
                .key(key)
                .upload_id(upload_id);
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        }));
        match result {
            Ok(_) | Err(Failure::NotFound(_)) => Ok(()),
            Err(f) if f.is_fatal("NoSuchUpload") => Ok(()),
            Err(f) => Err(self.error("AbortMultipartUpload", key, &f)),
        }
    }

    /// Whether object `key` exists.
    fn exists(&self, key: &str) -> Result<bool> {
        let what = format!("{}: HeadObject {key}", self.subject);
        let result = runtime().block_on(retry(&what, None, || {
            let call = self
                .client
                .head_object()
                .bucket(&self.location.bucket)
                .key(key);
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        }));
        match result {
            Ok(_) => Ok(true),
            Err(Failure::NotFound(_)) => Ok(false),
            Err(f) => Err(self.error("HeadObject", key, &f)),
        }
    }

    /// Completes a pending upload: the object appears under its final key, whole.
    /// Idempotent: an upload completed before (a checkpoint committed again after a crash,
    /// or by the writer and the checkpoint at once) is fine when its object exists.
    pub fn complete(&self, pending: &S3Pending) -> Result<()> {
        let key = &pending.key;
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(
                pending
                    .parts
                    .iter()
                    .map(|(number, e_tag)| {
                        CompletedPart::builder()
                            .part_number(*number)
                            .e_tag(e_tag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let what = format!("{}: CompleteMultipartUpload {key}", self.subject);
        let result = runtime().block_on(retry(&what, None, || {
            let call = self
                .client
                .complete_multipart_upload()
                .bucket(&self.location.bucket)
                .key(key)
                .upload_id(&pending.upload_id)
                .multipart_upload(parts.clone());
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        }));
        match result {
            Ok(_) => Ok(()),
            Err(f) if f.is_fatal("NoSuchUpload") => {
                // Completed already, perhaps by a call still finishing: look for the object
                // for a few seconds before calling the upload lost.
                for _ in 0..20 {
                    if self.exists(key)? {
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                Err(Error::connector(format!(
                    "{}: the pending upload of s3://{}/{key} no longer exists (aborted, \
                     or removed by a lifecycle rule) and the object was never completed, so \
                     its rows are lost",
                    self.subject, self.location.bucket
                )))
            }
            Err(f) => Err(self.error("CompleteMultipartUpload", key, &f)),
        }
    }

    /// Starts the multipart upload of `key`.
    pub fn create(self: &Arc<Self>, key: String) -> Result<S3Upload> {
        let what = format!("{}: CreateMultipartUpload {key}", self.subject);
        let output = runtime()
            .block_on(retry(&what, None, || {
                let call = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.location.bucket)
                    .key(&key);
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            }))
            .map_err(|f| self.error("CreateMultipartUpload", &key, &f))?;
        let upload_id = output.upload_id().unwrap_or_default().to_string();
        Ok(S3Upload(Arc::new(Mutex::new(UploadState {
            target: Arc::clone(self),
            key,
            upload_id,
            buffer: Vec::with_capacity(PART_BYTES),
            parts: Vec::new(),
            done: false,
        }))))
    }
}

struct UploadState {
    target: Arc<S3Target>,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
    /// Completed or aborted: nothing is left to clean up.
    done: bool,
}

impl UploadState {
    /// Uploads the buffer as the next part.
    fn upload_part(&mut self) -> Result<()> {
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buffer);
        let target = Arc::clone(&self.target);
        let what = format!("{}: UploadPart {}", target.subject, self.key);
        let output = runtime()
            .block_on(retry(&what, None, || {
                let call = target
                    .client
                    .upload_part()
                    .bucket(&target.location.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body.clone()));
                async move { call.send().await.map_err(|e| Failure::of(&e)) }
            }))
            .map_err(|f| target.error("UploadPart", &self.key, &f))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(output.e_tag().map(str::to_string))
                .build(),
        );
        self.buffer = Vec::with_capacity(PART_BYTES);
        Ok(())
    }

    fn abort(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let target = Arc::clone(&self.target);
        let call = target
            .client
            .abort_multipart_upload()
            .bucket(&target.location.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id);
        // Best effort: the job is failing already, and a bucket lifecycle rule removes
        // what an abort could not.
        let _ = runtime().block_on(call.send());
    }
}

/// The open upload of one part file; the Parquet or line writer writes into it.
#[derive(Clone)]
pub struct S3Upload(Arc<Mutex<UploadState>>);

impl S3Upload {
    fn state(&self) -> std::sync::MutexGuard<'_, UploadState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn key(&self) -> String {
        self.state().key.clone()
    }

    /// Uploads what is left as the last part. The object does not exist until
    /// [`PendingUpload::commit`].
    pub fn finish(self) -> Result<PendingUpload> {
        {
            let mut state = self.state();
            if !state.buffer.is_empty() || state.parts.is_empty() {
                state.upload_part()?;
            }
        }
        Ok(PendingUpload(self))
    }
}

impl Write for S3Upload {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.state();
        state.buffer.extend_from_slice(bytes);
        if state.buffer.len() >= PART_BYTES {
            state
                .upload_part()
                .map_err(|e| std::io::Error::other(e.message().to_string()))?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A finished upload waiting for the commit that makes it an object.
pub struct PendingUpload(S3Upload);

impl PendingUpload {
    /// Hands the upload over to a checkpoint: it is no longer aborted when dropped, and is
    /// completed by whoever commits the checkpoint.
    pub fn hand_over(self) -> S3Pending {
        let pending = self.describe();
        self.0.state().done = true;
        pending
    }

    fn describe(&self) -> S3Pending {
        let state = self.0.state();
        S3Pending {
            key: state.key.clone(),
            upload_id: state.upload_id.clone(),
            parts: state
                .parts
                .iter()
                .map(|p| {
                    (
                        p.part_number().unwrap_or_default(),
                        p.e_tag().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        }
    }

    /// Completes the upload: the object appears under its final key, whole.
    pub fn commit(self) -> Result<()> {
        let target = Arc::clone(&self.0.state().target);
        target.complete(&self.describe())?;
        self.0.state().done = true;
        Ok(())
    }
}

/// A pending upload as a checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct S3Pending {
    pub key: String,
    pub upload_id: String,
    /// Part numbers and ETags, in order.
    pub parts: Vec<(i32, String)>,
}

impl Drop for UploadState {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_keys() {
        let mut o = Options::from_pairs("t", &[("s3.path-style-access", "true")]);
        let l = S3Location::take("s3://bucket/out/metrics/", &mut o)
            .unwrap()
            .unwrap();
        o.finish().unwrap();
        assert_eq!(l.bucket, "bucket");
        assert_eq!(l.prefix, "out/metrics");
        assert_eq!(l.path_style, Some(true));
        assert_eq!(
            l.key("dt=2026-11-23", "part-1.parquet"),
            "out/metrics/dt=2026-11-23/part-1.parquet"
        );
        assert_eq!(l.key("", "part-1.parquet"), "out/metrics/part-1.parquet");
        assert_eq!(l.url(), "s3://bucket/out/metrics/");
        assert_eq!(l.folder(), "out/metrics/");
        let mut o = Options::default();
        let root = S3Location::take("s3a://b", &mut o).unwrap().unwrap();
        assert_eq!(root.key("", "x"), "x");
        assert_eq!(root.folder(), "");
        assert!(S3Location::take("/local/path", &mut o).unwrap().is_none());
        assert!(S3Location::take("s3:///x", &mut o).is_err());
    }
}
