"""oaviz.training"""
