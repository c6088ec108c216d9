-- The pending requests counted per upstream (queue depth: /admin/queue, the queue_depth gauge)
-- and listed oldest first across upstreams (/admin/queue) from an index alone. Both used to
-- walk (status, finished_at) and then read or sort every pending row: over a second each with
-- 750,000 pending, which made the depth time out. (status, finished_at) serves nothing since
-- migration 2 (pruning and the finished listing go by finished_at).
DROP INDEX IF EXISTS queued_requests_finished;
CREATE INDEX IF NOT EXISTS queued_requests_status_upstream
    ON queued_requests (status, upstream);
CREATE INDEX IF NOT EXISTS queued_requests_status_age
    ON queued_requests (status, enqueued_at, id);
