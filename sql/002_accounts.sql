-- Accounts, bearer tokens, the point ledger and durable idempotency records.
-- Personal data (email, name, phone) is stored sealed with an AEAD
-- (see src/core/pii.c); email_index is a keyed hash for unique lookups.
CREATE TABLE users (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    email_index    BINARY(32)      NOT NULL,
    email_enc      VARBINARY(600)  NOT NULL,
    name_enc       VARBINARY(600)  NOT NULL,
    phone_enc      VARBINARY(200)  NOT NULL,
    password_hash  VARCHAR(255)    NOT NULL,
    role           ENUM('BUYER','SELLER','ADMIN') NOT NULL DEFAULT 'BUYER',
    balance        BIGINT          NOT NULL DEFAULT 0,
    version        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    UNIQUE KEY users_email (email_index),
    CONSTRAINT users_balance_range CHECK (balance >= 0 AND balance <= 100000000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Tokens are 256 random bits; only their SHA-256 is stored.
CREATE TABLE auth_tokens (
    token_hash   BINARY(32)      NOT NULL,
    user_id      BIGINT UNSIGNED NOT NULL,
    expires_at   DATETIME(6)     NOT NULL,
    revoked_at   DATETIME(6)     NULL,
    created_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (token_hash),
    KEY auth_tokens_user (user_id),
    KEY auth_tokens_expiry (expires_at),
    CONSTRAINT auth_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- Every balance change is one row, written in the same transaction as the
-- change: for every user, balance = SUM(delta).
CREATE TABLE point_ledger (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id        BIGINT UNSIGNED NOT NULL,
    delta          BIGINT          NOT NULL,
    balance_after  BIGINT          NOT NULL,
    kind           VARCHAR(16)     NOT NULL,   -- CHARGE, ORDER_PAYMENT, ORDER_REFUND, ...
    ref_id         BIGINT UNSIGNED NULL,
    created_at     DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (id),
    KEY point_ledger_user (user_id, id),
    CONSTRAINT point_ledger_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;

-- The durable half of Idempotency-Key: inserted in the same transaction as
-- the effect, so a Redis flush can never make a retry apply twice.
CREATE TABLE idempotency_keys (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id      BIGINT UNSIGNED NOT NULL,
    idem_key     VARBINARY(255)  NOT NULL,
    fingerprint  BINARY(32)      NOT NULL,
    status       SMALLINT        NOT NULL,
    body         MEDIUMBLOB      NOT NULL,
    ref_kind     VARCHAR(16)     NOT NULL,    -- CHARGE, ORDER, ...
    ref_id       BIGINT UNSIGNED NOT NULL,
    created_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    expires_at   DATETIME(6)     NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY idempotency_user_key (user_id, idem_key),
    KEY idempotency_expiry (expires_at)
) ENGINE=InnoDB;
