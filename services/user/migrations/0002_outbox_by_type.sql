-- Recent events of one type (the registration-attempt notice is sent at most hourly per
-- account, which looks up the last hour's notices).
CREATE INDEX outbox_type_time ON outbox (event_type, occurred_at);
