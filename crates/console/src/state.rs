//! What every console handler shares: the runtime.

use std::sync::Arc;

use runtime::Runtime;

#[derive(Clone)]
pub struct ConsoleState {
    pub runtime: Arc<Runtime>,
}
