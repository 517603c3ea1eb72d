-- The trace context of the step that scheduled each activity task (W3C `traceparent` and
-- `tracestate`; NULL when the step was not traced), so that each attempt's span joins the
-- run's trace in whichever worker process claims it. Nullable without a default: adding
-- them rewrites nothing.
ALTER TABLE reprise.activity_tasks
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate text;
