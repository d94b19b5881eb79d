"""The one package every SceneXtras service shares: settings, auth, errors, events, bus, database."""
