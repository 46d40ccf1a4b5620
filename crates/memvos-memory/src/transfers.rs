//! Counts of the copies between the host and the device that memvos's own code makes while it
//! segments (frames in, label maps out, the few per-frame numbers a memory policy decides on).
//! `stage_times` reports them per frame, so "tensors stay on the device" is measured, not
//! claimed. Copies burn makes inside its own kernels are not counted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use burn_tensor::kind::Basic;
use burn_tensor::{Device, Tensor, TensorData};

static UPLOADS: AtomicU64 = AtomicU64::new(0);
static UPLOAD_BYTES: AtomicU64 = AtomicU64::new(0);
static DOWNLOADS: AtomicU64 = AtomicU64::new(0);
static DOWNLOAD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Copies made since the process started (or the difference of two [`counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Host-to-device copies.
    pub uploads: u64,
    /// Their bytes.
    pub upload_bytes: u64,
    /// Device-to-host copies.
    pub downloads: u64,
    /// Their bytes.
    pub download_bytes: u64,
}

impl std::ops::Sub for Transfers {
    type Output = Transfers;

    fn sub(self, o: Transfers) -> Transfers {
        Transfers {
            uploads: self.uploads - o.uploads,
            upload_bytes: self.upload_bytes - o.upload_bytes,
            downloads: self.downloads - o.downloads,
            download_bytes: self.download_bytes - o.download_bytes,
        }
    }
}

/// The counts so far, all threads together.
pub fn counts() -> Transfers {
    Transfers { uploads: UPLOADS.load(Relaxed), upload_bytes: UPLOAD_BYTES.load(Relaxed), downloads: DOWNLOADS.load(Relaxed), download_bytes: DOWNLOAD_BYTES.load(Relaxed) }
}

/// `Tensor::from_data`, counted.
pub fn upload<const D: usize, K: Basic>(data: TensorData, device: &Device) -> Tensor<D, K> {
    UPLOADS.fetch_add(1, Relaxed);
    UPLOAD_BYTES.fetch_add(data.as_bytes().len() as u64, Relaxed);
    Tensor::from_data(data, device)
}

/// `Tensor::into_data`, counted.
pub fn download<const D: usize, K: Basic>(t: Tensor<D, K>) -> TensorData {
    let data = t.into_data();
    DOWNLOADS.fetch_add(1, Relaxed);
    DOWNLOAD_BYTES.fetch_add(data.as_bytes().len() as u64, Relaxed);
    data
}
