-- A notification had three secondary keys: (event_id, user_id), the pair
-- that makes it exactly-once; (user_id, id), a user's list, newest first;
-- and (user_id, read_at, id), the unread ones. The last two become one,
-- (user_id, id, read_at): the list reads it as before, and the unread list
-- reads the same range, newest first, skipping the read ones inside the
-- key (read_at is in it, so no row is looked up to skip one). Every
-- notification the notifier writes is one index entry cheaper
-- (bench/RESULTS.md, issue 14).
ALTER TABLE notifications
    DROP KEY notifications_unread,
    DROP KEY notifications_user,
    ADD KEY notifications_user (user_id, id, read_at);
