-- Image generation jobs (`Prefer: respond-async`; docs/media.md "Generation").
-- A job holds its quota reservation (`reservation_id`, in the core database) from the request
-- until it is settled (images stored) or released (failed). `lease_until`: the worker running it
-- holds it until then, renewing it; a queued job, or a running one whose lease ran out (its process
-- died), is taken up again. `settled`: the reservation was settled or released; a finished job not
-- yet settled is settled at the next scan.
CREATE TABLE generation_jobs (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL,
    status         TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    request        JSONB NOT NULL,          -- prompt (with context), count, aspect_ratio, provider, ...
    reservation_id UUID,
    settled        BOOLEAN NOT NULL DEFAULT false,
    image_ids      UUID[] NOT NULL DEFAULT '{}',
    error          JSONB,
    attempts       INTEGER NOT NULL DEFAULT 0,
    lease_until    TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX generation_jobs_user ON generation_jobs (user_id, created_at DESC);
-- What a scan looks at: unfinished jobs, and finished ones whose reservation is not settled yet.
CREATE INDEX generation_jobs_pending ON generation_jobs (lease_until NULLS FIRST)
    WHERE status IN ('queued', 'running') OR NOT settled;
