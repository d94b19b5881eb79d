-- The history window of a conversation: the newest messages whose running token total stays
-- within the cap, plus the pinned messages older than that. Read newest first through
-- idx_messages_conversation_seq and stopped at the first message past the cap, so a message in
-- a conversation of thousands costs what its window costs, not what the whole history costs
-- (001's window-function form read and summed every message of the conversation each time).
--
-- Only the columns a prompt needs, and `total`: how many messages the conversation has (before
-- `p_before` when given), so the caller can say how many were dropped.
CREATE OR REPLACE FUNCTION chat_history_window(p_conversation uuid, p_cap bigint, p_before bigint DEFAULT NULL)
RETURNS TABLE (id uuid, seq bigint, sender text, role text, content text, token_count integer, pinned boolean, total bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    running  bigint := 0;
    boundary bigint;          -- seq of the newest message outside the window
    n_total  bigint;
    m        record;
BEGIN
    IF p_before IS NULL THEN
        SELECT c.message_count INTO n_total FROM conversations c WHERE c.id = p_conversation;
    ELSE
        SELECT count(*) INTO n_total FROM messages x WHERE x.conversation_id = p_conversation AND x.seq < p_before;
    END IF;
    FOR m IN
        SELECT x.id, x.seq, x.sender, x.role, x.content, x.token_count, x.pinned
          FROM messages x
         WHERE x.conversation_id = p_conversation AND (p_before IS NULL OR x.seq < p_before)
         ORDER BY x.seq DESC
    LOOP
        running := running + m.token_count;
        IF running > p_cap THEN
            boundary := m.seq;
            EXIT;
        END IF;
        id := m.id; seq := m.seq; sender := m.sender; role := m.role; content := m.content;
        token_count := m.token_count; pinned := m.pinned; total := n_total;
        RETURN NEXT;
    END LOOP;
    IF boundary IS NOT NULL THEN
        RETURN QUERY
            SELECT x.id, x.seq, x.sender, x.role, x.content, x.token_count, x.pinned, n_total
              FROM messages x
             WHERE x.conversation_id = p_conversation AND x.pinned AND x.seq <= boundary;
    END IF;
END
$$;
