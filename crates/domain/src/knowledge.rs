//! Knowledge documents: what a tenant has ingested, per namespace.

use serde::{Deserialize, Serialize};

use crate::persona::str_enum;
use crate::{DocumentId, TenantId, Timestamp};

/// Who may read a document, from most to least open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    Public,
    Internal,
    Restricted,
    Confidential,
}

impl AccessLevel {
    /// Order from most open (0) to most closed (3), as stored.
    pub fn rank(self) -> i64 {
        match self {
            AccessLevel::Public => 0,
            AccessLevel::Internal => 1,
            AccessLevel::Restricted => 2,
            AccessLevel::Confidential => 3,
        }
    }

    /// The level stored as `rank`, if there is one.
    pub fn from_rank(rank: i64) -> Option<Self> {
        [AccessLevel::Public, AccessLevel::Internal, AccessLevel::Restricted, AccessLevel::Confidential]
            .into_iter()
            .find(|level| level.rank() == rank)
    }
}

str_enum!(AccessLevel: "access level" {
    Public => "public", Internal => "internal", Restricted => "restricted", Confidential => "confidential",
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeDocument {
    pub id: DocumentId,
    pub tenant_id: TenantId,
    /// Logical grouping, e.g. `product_docs`.
    pub namespace: String,
    /// File name or URL.
    pub source: String,
    pub content: String,
    /// Hex SHA-256 of `content`; the same content is stored once per tenant and namespace.
    pub content_hash: String,
    pub chunks: Vec<String>,
    pub access_level: AccessLevel,
    pub metadata: serde_json::Value,
    pub created_at: Timestamp,
}

/// Where a chunk sits: its document and its position in it (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRef {
    pub document_id: DocumentId,
    pub ordinal: u32,
}

/// The embeddings of a document's chunks: one unit vector per chunk, in chunk order, all from
/// one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEmbeddings {
    /// The model that made them, e.g. `all-MiniLM-L6-v2`.
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
}

/// A stored chunk's text with what retrieval filters on, for building an in-memory word index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkText {
    pub chunk: ChunkRef,
    pub namespace: String,
    pub access_level: AccessLevel,
    pub text: String,
}

/// What a tenant's knowledge holds, in two numbers read cheaply: it changes whenever a document
/// is stored (stamped as it is stored, so normally the newest) or deleted, so an in-memory index
/// can tell it is behind without reading the chunks. It can miss a change only when, between two
/// reads, one document is deleted and another stored with a time no later than the newest (a
/// replica whose clock runs behind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KnowledgeRevision {
    pub documents: u64,
    /// `created_at` of the newest document, in microseconds (0 with none).
    pub newest: i64,
}

/// A stored chunk vector with what retrieval filters on, for rebuilding an in-memory index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkVector {
    pub chunk: ChunkRef,
    pub namespace: String,
    pub access_level: AccessLevel,
    pub vector: Vec<f32>,
}
