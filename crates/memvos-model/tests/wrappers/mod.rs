//! A network wrapper the embedding tests share: it edits the query with burn's ops, which the
//! CPU path must hear (and convert, since burn lays the edited tensor out its own way).

use burn::tensor::Tensor;
use memvos_memory::{MemoryBank, MemoryError, Similarity};
use memvos_model::{KeyKind, MemoryEncoding, MemoryNetwork, Method, Query, SharedNetwork};

/// Adds a constant to the query value `v16` of the network it wraps.
pub struct EditV16(pub SharedNetwork);

impl MemoryNetwork for EditV16 {
    fn method(&self) -> Method {
        self.0.method()
    }
    fn key_kind(&self) -> KeyKind {
        self.0.key_kind()
    }
    fn similarity(&self) -> Similarity {
        self.0.similarity()
    }
    fn encode_query(&self, frame: Tensor<4>, previous: Option<Tensor<4>>) -> Query {
        let mut q = self.0.encode_query(frame, previous);
        q.v16 = q.v16.add_scalar(0.5);
        q
    }
    fn encode_memory(&self, frame: Tensor<4>, query: &Query, masks: Tensor<4>, next: Option<Tensor<4>>) -> MemoryEncoding {
        self.0.encode_memory(frame, query, masks, next)
    }
    fn read_memory(&self, query: &Query, bank: &MemoryBank, positions: &[usize]) -> Result<Tensor<4>, MemoryError> {
        self.0.read_memory(query, bank, positions)
    }
    fn decode(&self, query: &Query, readout: Tensor<4>) -> Tensor<4> {
        self.0.decode(query, readout)
    }
}
