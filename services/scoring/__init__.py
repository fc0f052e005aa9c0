"""Clip scores for filtering: luminance, VMAF motion, flow, OCR text area, aesthetic or BRISQUE."""
