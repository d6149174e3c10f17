-- Refusals before authentication are aggregated: one row stands for `count` identical
-- refusals from one client address in one window, so a flood of bad tokens costs a row a
-- window, not a row a call. `client_address` is the caller's address as the gateway
-- judged it (the peer, or X-Forwarded-For behind a trusted proxy).
ALTER TABLE gateway.audit_event
    ADD COLUMN client_address text,
    ADD COLUMN count integer NOT NULL DEFAULT 1 CHECK (count >= 1);
