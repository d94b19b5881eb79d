"""SceneXtras auth service: accounts, tokens, profiles, referrals."""
