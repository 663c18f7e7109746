//! Why a delivery could not be made durable: the one error every store gives an SMTP session.

/// Why a delivery failed; decides the reply (RFC 3463 class 4.3: mail system status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// Temporary local problem (I/O error): 451 4.3.0.
    Temporary(String),
    /// Storage full: 452 4.3.1.
    Full,
    /// A recipient's mailbox quota would be exceeded: the message is refused whole (it is
    /// stored whole or not at all). `452 4.2.2`, or `552 5.2.2` when `permanent` (the
    /// config's `quota.over_quota`).
    OverQuota { mailbox: String, permanent: bool },
}

impl DeliveryError {
    /// A storage error as the client will hear it: a full disk is 452 4.3.1, anything else
    /// 451 4.3.0.
    pub fn from_io(e: &std::io::Error) -> DeliveryError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            DeliveryError::Full
        } else {
            DeliveryError::Temporary(e.to_string())
        }
    }
}
