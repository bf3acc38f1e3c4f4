//! Shared by the model-based proptest and the fuzz targets: one operation
//! enum, a plain in-memory model, and a runner that checks the engine
//! against the model.
