-- Votes in one statement (repositories/votes.py): the stored "hot" is computed in SQL by the same
-- formula as community_service.service.hot() (Reddit's; docs/community.md), so a vote's upsert,
-- the target's counters, its hot value and the outbox event are one round trip. A test checks
-- the two definitions agree.
CREATE OR REPLACE FUNCTION community_hot(score integer, at timestamptz) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round((sign(score) * log(greatest(abs(score), 1)::numeric)
                  + (extract(epoch FROM at) - 1700000000) / 45000)::numeric, 7)::double precision
$$;
