-- Notifications are pruned by age (the retention pass, store/retention.rs): an index for it.
CREATE INDEX notifications_by_time ON notifications (created_at);
