"""mobexport.quantization — schemes, calibration sets, fidelity metrics and the one validator."""
