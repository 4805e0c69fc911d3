-- The audit (and cancels/refunds) find ledger rows by what they pay for.
CREATE INDEX point_ledger_ref ON point_ledger (ref_id, kind);
