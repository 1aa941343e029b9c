-- Provider webhook events already handled (Stripe's evt_…, PayPal's WH-…): the row is
-- inserted in the transaction of the event's effect, so a redelivery finds it and has no
-- second effect. Providers redeliver for about three days.
CREATE TABLE webhook_events (
    provider text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- Webhooks find a payment by the provider's intent id when the event carries no
-- payment id.
CREATE INDEX payments_by_provider_ref ON payments (provider, provider_ref) WHERE provider_ref IS NOT NULL;
