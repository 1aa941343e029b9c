//! The local outbox: the provider of a shop without provider keys. It sends nothing; the
//! message stays in the `messages` table, marked sent by `outbox`, where `GET /messages`
//! and `shopctl notifications` show it. Clearly labelled: never chosen silently in
//! production mode.

use super::{Outgoing, Provider, SendError, Sent};

pub const NAME: &str = "outbox";

#[derive(Debug, Clone, Copy, Default)]
pub struct Outbox;

#[async_trait::async_trait]
impl Provider for Outbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        false
    }

    async fn send(&self, message: &Outgoing) -> Result<Sent, SendError> {
        Ok(Sent {
            provider_ref: Some(format!("outbox-{}", message.id)),
        })
    }
}
