-- migrate:up
-- Retention of the tables that grow with traffic (issue 16): the periodic retention duty
-- deletes old rows in small batches, each batch found through one of these indexes instead
-- of a scan of the whole table.

-- Finished webhook messages by age; deleting one cascades to its deliveries (found by
-- message) and their attempts (found by delivery, webhook_attempts_delivery_idx).
CREATE INDEX webhook_messages_created_idx ON webhook_messages (created_at);
CREATE INDEX webhook_deliveries_message_idx ON webhook_deliveries (message_id);
-- Finished training jobs by age (the queue index covers only queued/running ones).
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE state IN ('succeeded', 'failed');
-- Dead letters by age (ingest_errors_sensor_idx leads with the sensor).
CREATE INDEX ingest_errors_received_idx ON ingest_errors (received_at);
-- Models by job: a finished job is kept while a model it produced exists.
CREATE INDEX models_job_idx ON models (job_id) WHERE job_id IS NOT NULL;

-- migrate:down
DROP INDEX models_job_idx;
DROP INDEX ingest_errors_received_idx;
DROP INDEX jobs_finished_idx;
DROP INDEX webhook_deliveries_message_idx;
DROP INDEX webhook_messages_created_idx;
