"""Does face framing rescue footage that is not face-centred? (python -m research.framing_check)"""
