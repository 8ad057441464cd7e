"""oaviz.ui"""
