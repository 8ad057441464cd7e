"""oaviz.models"""
