//! The `[queue]` config section. Being written: fields are added by the queue work.

use serde::Deserialize;

/// Retry schedule, lifetime and limits of the outbound queue.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {}
