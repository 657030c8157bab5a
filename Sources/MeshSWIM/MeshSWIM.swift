// MeshSWIM: sans-IO SWIM membership (see docs/architecture.md).
