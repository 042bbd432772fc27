"""Writers: .lbpk device package, ONNX, TVM. Pure Python; they talk to the runtime only through files."""
