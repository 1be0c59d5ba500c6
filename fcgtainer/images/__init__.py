"""Images: recipes (parse, hash, compose) and the layered, cached build."""
