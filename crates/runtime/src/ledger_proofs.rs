//! Proofs read from the store: the tiles a `ledger::tiles::ProofPlan` needs, read once each,
//! full ones (immutable) kept in a bounded cache, partial ones read as far as needed. Used by
//! the ledger service for served proofs and by verification for chain inclusion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::TenantId;
use domain::ports::Store;
use ledger::Hash;
use ledger::tiles::{ProofPlan, TILE_WIDTH, TileId};

use crate::error::LedgerError;

/// Full tiles kept in memory for proofs, per generation (two generations: ≤ 16 MiB in all).
const MAX_CACHED_TILES: usize = 1024;

/// Full tiles (immutable once full), in two generations: a lookup promotes, a full generation
/// is dropped whole.
#[derive(Default)]
pub(crate) struct TileCache {
    current: HashMap<(TenantId, TileId), Arc<[Hash]>>,
    previous: HashMap<(TenantId, TileId), Arc<[Hash]>>,
}

impl TileCache {
    pub(crate) fn get(&mut self, key: &(TenantId, TileId)) -> Option<Arc<[Hash]>> {
        if let Some(found) = self.current.get(key) {
            return Some(found.clone());
        }
        let found = self.previous.remove(key)?;
        self.insert(key.clone(), found.clone());
        Some(found)
    }

    pub(crate) fn insert(&mut self, key: (TenantId, TileId), tile: Arc<[Hash]>) {
        if self.current.len() >= MAX_CACHED_TILES {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, tile);
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.current.len() + self.previous.len()) * (TILE_WIDTH as usize * 32 + 64)
    }
}

/// Finishes a proof from the store's tiles, reading each full tile once into `cache` when one
/// is given. Only the tiles the proof touches are read.
pub(crate) async fn prove_from_store(
    store: &dyn Store,
    tenant: &TenantId,
    plan: &ProofPlan,
    cache: Option<&Mutex<TileCache>>,
) -> Result<Vec<Hash>, LedgerError> {
    let cached = |key: &(TenantId, TileId)| cache.and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).get(key));
    let mut tiles: HashMap<TileId, Arc<[Hash]>> = HashMap::new();
    for (id, wanted) in plan.tiles() {
        let key = (tenant.clone(), id);
        if let Some(tile) = cached(&key) {
            tiles.insert(id, tile);
            continue;
        }
        // A full tile never changes: read it whole and keep it; a partial one only as far as
        // needed.
        let read = store.tree_hashes(tenant, id.level, id.start(), id.start() + TILE_WIDTH).await?;
        let tile: Arc<[Hash]> = Arc::from(read);
        if tile.len() as u64 == TILE_WIDTH {
            if let Some(cache) = cache {
                cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, tile.clone());
            }
        } else if (tile.len() as u64) < wanted {
            return Err(LedgerError::Damaged(format!(
                "tenant {tenant}: tree tile {}/{} holds {} hashes, {wanted} needed",
                id.level,
                id.index,
                tile.len()
            )));
        }
        tiles.insert(id, tile);
    }
    plan.finish(|id| tiles.get(&id).map(|t| &t[..])).map_err(|e| LedgerError::Damaged(format!("tenant {tenant}: {e}")))
}
