"""rewardflow.models"""
