-- What a flip ticket can reveal: a weighted table, drawn server-side (service.flip). Data, not
-- code: a new row (or a new weight) changes the draw for the next flips. Credits (bonus_messages,
-- premium_messages, image_credits) reach Payment as reward.granted; XP is added here.
CREATE TABLE IF NOT EXISTS flip_rewards (
    code   TEXT PRIMARY KEY,
    kind   TEXT NOT NULL CHECK (kind IN ('bonus_messages', 'premium_messages', 'image_credits', 'xp')),
    amount INTEGER NOT NULL CHECK (amount > 0),
    weight INTEGER NOT NULL CHECK (weight >= 0),
    active BOOLEAN NOT NULL DEFAULT true
);

INSERT INTO flip_rewards (code, kind, amount, weight) VALUES
    ('messages_5', 'bonus_messages', 5, 35),
    ('messages_15', 'bonus_messages', 15, 10),
    ('premium_2', 'premium_messages', 2, 15),
    ('images_2', 'image_credits', 2, 10),
    ('xp_50', 'xp', 50, 25),
    ('xp_200', 'xp', 200, 5)
ON CONFLICT (code) DO NOTHING;
