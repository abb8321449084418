"""rewardflow.data"""
