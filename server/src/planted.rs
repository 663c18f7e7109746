//! Planted bugs (feature `planted-bugs`, test builds only): deliberate durability bugs a
//! scenario can switch on with `[server.planted_bugs]`, so a test can show that the
//! simulator's invariants and seed sweeps find a real loss of acknowledged mail (issue #12
//! item 4). Without the feature the config key does not exist: a release build rejects it
//! like any unknown key, and none of this code is compiled.

use serde::Deserialize;

/// Which bugs are switched on.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PlantedBugs {
    /// The mailbox store skips the directory fsync after renaming a message into place
    /// (step 5 of the committer): the 250 goes out while the new name is not durable, so a
    /// crash soon after loses the message.
    pub skip_mailbox_dir_sync: bool,
}
