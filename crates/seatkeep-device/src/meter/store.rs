//! Where the device keeps its usage state: the product provides the I/O.

/// The device's storage. The library never touches a file itself.
///
/// * [`save`](Self::save) must replace the state atomically: write a temporary file in the
///   same folder, flush it to disk, rename it over the old one (a crash leaves the old state
///   or the new one, never half of each).
/// * The *anchor* is the highest save counter written so far, kept apart from the state
///   file — in the platform's secure storage where there is one (a TPM counter, a keystore
///   entry), otherwise at least in another file. A state file restored from a backup has a
///   lower counter than the anchor and locks the meter.
pub trait StateStore {
    type Error;
    /// The sealed state last saved, or none on a fresh device.
    fn load(&mut self) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Replaces the sealed state atomically.
    fn save(&mut self, sealed: &[u8]) -> Result<(), Self::Error>;
    /// The anchor, 0 on a fresh device.
    fn load_anchor(&mut self) -> Result<u64, Self::Error>;
    /// Raises the anchor.
    fn save_anchor(&mut self, writes: u64) -> Result<(), Self::Error>;
}

/// A store in memory: for tests, examples, and products that persist it their own way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    pub sealed: Option<Vec<u8>>,
    pub anchor: u64,
}

impl StateStore for MemoryStore {
    type Error = std::convert::Infallible;

    fn load(&mut self) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.sealed.clone())
    }

    fn save(&mut self, sealed: &[u8]) -> Result<(), Self::Error> {
        self.sealed = Some(sealed.to_vec());
        Ok(())
    }

    fn load_anchor(&mut self) -> Result<u64, Self::Error> {
        Ok(self.anchor)
    }

    fn save_anchor(&mut self, writes: u64) -> Result<(), Self::Error> {
        self.anchor = self.anchor.max(writes);
        Ok(())
    }
}
