"""oaviz.analysis"""
