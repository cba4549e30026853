"""The stream: source -> producer -> consumers -> model server -> store."""
