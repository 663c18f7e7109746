//! The outbound client reads replies with the one shared reader, [`crate::smtp::wire`].
//! This re-export keeps the client's `reader::ReplyReader` path while the reader lives with
//! the rest of the SMTP wire format.

pub(crate) use crate::smtp::wire::ReplyReader;
