//! SageMaker Feature Store: the `sagemaker-featurestore` sink, and a local feature store that
//! speaks the same API (`sluice featurestore serve`), keeps its data on disk, and is the
//! embedded default for local runs (`'aws.endpoint' = 'local:DIR'`).

pub mod config;
pub mod model;
pub mod offline;
pub mod server;
pub mod sink;
pub mod store;

pub use sink::FeatureStoreSink;
pub use store::{LocalStore, StoreSettings};
