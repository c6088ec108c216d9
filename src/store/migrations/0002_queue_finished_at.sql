-- Finished requests by age alone, newest or oldest first: pruning and the /admin/queue listing
-- walk this index instead of scanning (and sorting) the whole table, pending rows included.
CREATE INDEX IF NOT EXISTS queued_requests_finished_at
    ON queued_requests (finished_at, id);
